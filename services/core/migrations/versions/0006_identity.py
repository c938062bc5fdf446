"""Identity: verified e-mail, TOTP two-factor sign-in, recovery codes, sessions, the
development mail outbox, and the append-only audit log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from alembic import op

from chassis.migrations import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

IDENTITY = """
    ALTER TABLE users
        ADD COLUMN email_verified_at timestamptz,
        ADD COLUMN totp_secret text,
        ADD COLUMN totp_enabled_at timestamptz,
        -- the last TOTP time step accepted: a code of that step or an earlier one is a replay
        ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;
    -- Accounts made before addresses were verified count as verified: refusing every existing
    -- customer's payments on the day of the upgrade would be an outage. (Promoting one still
    -- takes PROMOTE=1, and RESET_PASSWORD=1 when its password is not the operator's.)
    UPDATE users SET email_verified_at = created_at;

    CREATE TABLE recovery_codes (
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        code_hash text NOT NULL,
        used_at timestamptz,
        PRIMARY KEY (user_id, code_hash)
    );

    -- One row per login (a token family): what the account's owner sees and revokes.
    CREATE TABLE sessions (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz NOT NULL DEFAULT now(),
        user_agent text NOT NULL DEFAULT '',
        address text NOT NULL DEFAULT '',
        two_factor boolean NOT NULL DEFAULT false,
        revoked_at timestamptz
    );
    CREATE INDEX sessions_by_user ON sessions (user_id, last_used_at DESC) WHERE revoked_at IS NULL;

    -- The development adapter of the e-mail port writes here; `make mail` lists it.
    CREATE TABLE mail_outbox (
        id bigserial PRIMARY KEY,
        recipient text NOT NULL,
        subject text NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE audit_log (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        action text NOT NULL,
        actor_id uuid,
        subject text,
        address text,
        user_agent text,
        request_id text,
        trace_id text,
        details jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_by_time ON audit_log (created_at, id);
    CREATE INDEX audit_log_by_actor ON audit_log (actor_id, created_at, id);
    CREATE INDEX audit_log_by_action ON audit_log (action, created_at, id);

    -- Append-only: the application's role (which owns the table) keeps INSERT and SELECT, and a
    -- trigger refuses UPDATE, DELETE and TRUNCATE to anyone who grants them back.
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER, PUBLIC;
    CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
"""


def upgrade() -> None:
    execute_script(op, IDENTITY)


def downgrade() -> None:
    execute_script(
        op,
        """
        DROP TABLE audit_log;
        DROP FUNCTION audit_log_is_append_only();
        DROP TABLE mail_outbox;
        DROP TABLE sessions;
        DROP TABLE recovery_codes;
        ALTER TABLE users DROP COLUMN email_verified_at, DROP COLUMN totp_secret,
            DROP COLUMN totp_enabled_at, DROP COLUMN totp_last_step;
        """,
    )
