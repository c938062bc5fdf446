"""Cache invalidations recorded in the transaction of the write that needs them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# The table `TieredCache.record` writes to, as it was at this revision.
CACHE_INVALIDATIONS = """
    CREATE TABLE cache_invalidations (
        id bigserial PRIMARY KEY,
        namespace text NOT NULL,
        key text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
"""


def upgrade() -> None:
    execute_script(op, CACHE_INVALIDATIONS)


def downgrade() -> None:
    execute_script(op, "DROP TABLE cache_invalidations")
