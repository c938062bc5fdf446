"""Core's side of payments: the payments and refunds it asked for, webhooks seen, outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from chassis.migrations import execute_script
from chassis.outbox import SCHEMA_SQL

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


UPGRADE = """
    CREATE TABLE payments (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        order_id uuid NOT NULL REFERENCES orders (id),
        user_id uuid NOT NULL REFERENCES users (id),
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        currency char(3) NOT NULL,
        status text NOT NULL CHECK (status IN
            ('processing', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
        refunded_cents bigint NOT NULL DEFAULT 0
            CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
        payment_method text NOT NULL,
        failure_code text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    -- At most one payment of an order that is not failed: no double charge by a second key.
    CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
        WHERE status <> 'failed';

    CREATE TABLE refunds (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        payment_id uuid NOT NULL REFERENCES payments (id),
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        failure_code text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX refunds_by_payment ON refunds (payment_id);

    CREATE TABLE webhook_events (
        provider text NOT NULL,
        event_id text NOT NULL,
        event_type text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (provider, event_id)
    );
    CREATE INDEX orders_unpaid ON orders (updated_at)
        WHERE status IN ('pending_payment', 'payment_failed');
"""


def upgrade() -> None:
    execute_script(op, UPGRADE + SCHEMA_SQL)


def downgrade() -> None:
    execute_script(
        op,
        """DROP TABLE processed_messages, outbox, webhook_events, refunds, payments;
           DROP INDEX orders_unpaid;
           DROP FUNCTION outbox_wake""",
    )
