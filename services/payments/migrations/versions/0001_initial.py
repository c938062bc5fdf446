"""Payments schema: payments, refunds, the append-only double-entry ledger, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


UPGRADE = """
    CREATE TABLE payments (
        id uuid PRIMARY KEY,
        order_id uuid NOT NULL,
        user_id uuid NOT NULL,
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        currency char(3) NOT NULL,
        status text NOT NULL CHECK (status IN
            ('processing', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
        refunded_cents bigint NOT NULL DEFAULT 0
            CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
        payment_method text NOT NULL,
        provider text NOT NULL,
        provider_ref text,
        failure_code text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX payments_provider_ref ON payments (provider_ref);

    CREATE TABLE refunds (
        id uuid PRIMARY KEY,
        payment_id uuid NOT NULL REFERENCES payments (id),
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        provider_ref text,
        failure_code text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );

    CREATE TABLE ledger_transactions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL CHECK (kind IN ('charge', 'refund')),
        reference text NOT NULL UNIQUE,
        payment_id uuid NOT NULL REFERENCES payments (id),
        currency char(3) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX ledger_transactions_day ON ledger_transactions (created_at);

    CREATE TABLE ledger_entries (
        id bigserial PRIMARY KEY,
        transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
        account text NOT NULL,
        amount_cents bigint NOT NULL CHECK (amount_cents <> 0),
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

    CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
    END $$;
    CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
    CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
    CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
    CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

    CREATE FUNCTION ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT sum(amount_cents) FROM ledger_entries
            WHERE transaction_id = NEW.transaction_id) <> 0 THEN
            RAISE EXCEPTION 'ledger transaction % does not sum to zero', NEW.transaction_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER ledger_balanced AFTER INSERT ON ledger_entries
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_balanced();
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
        """DROP TABLE processed_messages, outbox, ledger_entries, ledger_transactions,
               refunds, payments;
           DROP FUNCTION outbox_wake, ledger_balanced, ledger_append_only""",
    )
