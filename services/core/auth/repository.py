"""SQL of the auth domain."""

from __future__ import annotations

import asyncpg

from chassis.resources import Db

USER_COLUMNS = "id, email, name, role, created_at"


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


async def set_password_hash(conn: Db, user_id: str, password_hash: str) -> None:
    """Store a rehashed password."""
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def set_role(conn: Db, user_id: str, role: str) -> None:
    """Change a user's role."""
    await conn.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, role)
