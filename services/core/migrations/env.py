"""Alembic environment of the core schema."""

from alembic import context

from chassis.data import run_env

run_env(context)
