"""A late success of a payment whose order moved on is refunded automatically.

One payment in progress per order (the order's lock and status keep a second one from starting
while it is paid): a payment recorded as failed may still turn out to have succeeded beside the
one that paid the order. Refunds say why they were made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script(
        op,
        """DROP INDEX payments_one_live_per_order;
           CREATE UNIQUE INDEX payments_one_in_progress_per_order ON payments (order_id)
               WHERE status = 'processing';
           ALTER TABLE refunds ADD COLUMN reason text NOT NULL DEFAULT 'requested'
               CHECK (reason IN ('requested', 'order_not_payable'));""",
    )


def downgrade() -> None:
    execute_script(
        op,
        """ALTER TABLE refunds DROP COLUMN reason;
           DROP INDEX payments_one_in_progress_per_order;
           CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
               WHERE status <> 'failed';""",
    )
