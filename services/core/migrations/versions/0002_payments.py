"""Core's side of payments: the payments and refunds it asked for, webhooks seen, outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from chassis.migrations import execute_script

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


# The outbox, its wake-up and the processed messages the chassis' relay and consumers use,
# as they were at this revision.
OUTBOX = """
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        message_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
        exchange text NOT NULL,
        routing_key text NOT NULL,
        type text NOT NULL,
        body bytea NOT NULL,
        headers jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        sent_at timestamptz
    );
    CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
    CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
    CREATE FUNCTION outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER outbox_wake AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_wake();
    CREATE TABLE processed_messages (
        consumer text NOT NULL,
        message_id text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (consumer, message_id)
    );
"""


def upgrade() -> None:
    execute_script(op, UPGRADE + OUTBOX)


def downgrade() -> None:
    execute_script(
        op,
        """DROP TABLE processed_messages, outbox, webhook_events, refunds, payments;
           DROP INDEX orders_unpaid;
           DROP FUNCTION outbox_wake""",
    )
