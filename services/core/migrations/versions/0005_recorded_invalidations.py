"""Cache invalidations recorded in the transaction of the write that needs them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

from chassis.migrations import execute_script
from chassis.near_cache import RECORDED_INVALIDATIONS_SQL

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(op, RECORDED_INVALIDATIONS_SQL)


def downgrade() -> None:
    execute_script(op, "DROP TABLE cache_invalidations")
