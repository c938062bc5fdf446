"""SQL of the users domain."""

from __future__ import annotations

import asyncpg

from chassis.http import Position
from services.core.auth.repository import USER_COLUMNS


async def users_page(
    pool: asyncpg.Pool, *, after: Position | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` users after `after` in (created_at, id) order."""
    created_at, row_id = after or (None, None)
    return await pool.fetch(
        f"""SELECT {USER_COLUMNS} FROM users
            WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid)
            ORDER BY created_at, id LIMIT $3""",
        created_at,
        row_id,
        limit,
    )
