"""Alembic environment of the AI worker's schema."""

from alembic import context

from chassis.migrations import run_env

run_env(context)
