"""Provider webhooks the payments service has taken, by event id (it takes them itself now).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


UPGRADE = """
    CREATE TABLE webhook_events (
        provider text NOT NULL,
        event_id text NOT NULL,
        event_type text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (provider, event_id)
    );
"""


def upgrade() -> None:
    execute_script(op, UPGRADE)


def downgrade() -> None:
    execute_script(op, "DROP TABLE webhook_events")
