"""SQL of the auth domain: accounts, their credentials and their sessions."""

from __future__ import annotations

import uuid

import asyncpg

from chassis.data import Db, execute_counted

USER_COLUMNS = (
    "id, email, name, role, created_at, token_version, email_verified_at, totp_enabled_at"
)
SESSION_COLUMNS = "id, created_at, last_used_at, user_agent, address, two_factor"


async def insert_user(
    conn: Db, *, email: str, name: str, password_hash: str, role: str, verified: bool = False
) -> asyncpg.Record | None:
    """Insert a user (its e-mail `verified` or not); None if the email (case-insensitively) is
    taken."""
    return await conn.fetchrow(
        f"""INSERT INTO users (email, name, password_hash, role, email_verified_at)
            VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
            ON CONFLICT (lower(email)) DO NOTHING RETURNING {USER_COLUMNS}""",
        email,
        name,
        password_hash,
        role,
        verified,
    )


async def user_by_email(conn: Db, email: str) -> asyncpg.Record | None:
    """The user with this email (any case), with the password hash."""
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)", email
    )


async def user_by_id(conn: Db, user_id: str) -> asyncpg.Record | None:
    """The user with this id, with the password hash and the TOTP secret (enrolling or on)."""
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash, totp_secret FROM users WHERE id = $1::uuid",
        user_id,
    )


async def rehash_password(conn: Db, user_id: str, password_hash: str) -> None:
    """Store the same password hashed with today's parameters (the credentials stay the same)."""
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def change_credentials(
    conn: Db, user_id: str, *, role: str | None = None, password_hash: str | None = None
) -> asyncpg.Record:
    """Change a user's role and/or password and raise its credentials version, which cuts off
    every token issued before (publish it with `Revocations.cut_off_account`)."""
    row = await conn.fetchrow(
        f"""UPDATE users SET role = coalesce($2, role),
                password_hash = coalesce($3, password_hash),
                token_version = token_version + 1
            WHERE id = $1::uuid RETURNING {USER_COLUMNS}""",
        user_id,
        role,
        password_hash,
    )
    if row is None:
        raise LookupError(f"no user {user_id}")
    return row


async def reset_password(
    conn: Db, user_id: str, *, version: int, password_hash: str
) -> asyncpg.Record | None:
    """Set a new password if the credentials are still at `version` (a reset link is spent by
    its own use), raise the version, and count the mailbox as proven; None if they moved on."""
    return await conn.fetchrow(
        f"""UPDATE users SET password_hash = $3, token_version = token_version + 1,
                email_verified_at = coalesce(email_verified_at, now())
            WHERE id = $1::uuid AND token_version = $2 RETURNING {USER_COLUMNS}""",
        user_id,
        version,
        password_hash,
    )


async def mark_email_verified(conn: Db, user_id: str, email: str) -> asyncpg.Record | None:
    """Mark the account's address verified if it is still `email` and not verified yet."""
    return await conn.fetchrow(
        f"""UPDATE users SET email_verified_at = now()
            WHERE id = $1::uuid AND lower(email) = lower($2) AND email_verified_at IS NULL
            RETURNING {USER_COLUMNS}""",
        user_id,
        email,
    )


async def start_session(
    conn: Db,
    family: uuid.UUID,
    user_id: object,
    *,
    user_agent: str,
    address: str,
    two_factor: bool,
) -> None:
    """Record a new login (a token family)."""
    await conn.execute(
        """INSERT INTO sessions (id, user_id, user_agent, address, two_factor)
           VALUES ($1, $2, $3, $4, $5)""",
        family,
        user_id,
        user_agent,
        address,
        two_factor,
    )


async def touch_session(
    conn: Db, family: uuid.UUID, user_id: object, *, user_agent: str, address: str
) -> bool:
    """Note a login's use (recording a login from before sessions were kept); False if the
    login was revoked."""
    revoked_at = await conn.fetchval(
        """INSERT INTO sessions (id, user_id, user_agent, address) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET last_used_at = now(), user_agent = $3, address = $4
           WHERE sessions.user_id = $2
           RETURNING revoked_at""",
        family,
        user_id,
        user_agent,
        address,
    )
    return revoked_at is None


async def live_sessions(conn: Db, user_id: str, *, unused_for: float) -> list[asyncpg.Record]:
    """The account's logins that are not revoked and were used within `unused_for` seconds,
    most recently used first."""
    return await conn.fetch(
        f"""SELECT {SESSION_COLUMNS} FROM sessions
            WHERE user_id = $1::uuid AND revoked_at IS NULL
              AND last_used_at > now() - make_interval(secs => $2)
            ORDER BY last_used_at DESC LIMIT 100""",
        user_id,
        unused_for,
    )


async def revoke_session(conn: Db, user_id: str, family: uuid.UUID) -> bool:
    """Mark one of the account's logins revoked; False if it has no such live login."""
    changed = await execute_counted(
        conn,
        """UPDATE sessions SET revoked_at = now()
           WHERE id = $1 AND user_id = $2::uuid AND revoked_at IS NULL""",
        family,
        user_id,
    )
    return changed == 1


async def revoke_sessions(conn: Db, user_id: object) -> int:
    """Mark every live login of the account revoked: how many."""
    return await execute_counted(
        conn,
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
