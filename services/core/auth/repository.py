"""SQL of the auth domain."""

from __future__ import annotations

import asyncpg

from chassis.data import Db

USER_COLUMNS = "id, email, name, role, created_at, token_version"


async def insert_user(
    conn: Db, *, email: str, name: str, password_hash: str, role: str
) -> asyncpg.Record | None:
    """Insert a user; None if the email (case-insensitively) is taken."""
    return await conn.fetchrow(
        f"""INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)
            ON CONFLICT (lower(email)) DO NOTHING RETURNING {USER_COLUMNS}""",
        email,
        name,
        password_hash,
        role,
    )


async def user_by_email(conn: Db, email: str) -> asyncpg.Record | None:
    """The user with this email (any case), with the password hash."""
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)", email
    )


async def user_by_id(conn: Db, user_id: str) -> asyncpg.Record | None:
    """The user with this id."""
    return await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid", user_id)


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
