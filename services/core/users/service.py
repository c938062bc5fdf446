"""Reading user accounts."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis.errors import Unauthorized
from chassis.http import decode_cursor, page
from services.core.auth import repository as auth_repository
from services.core.auth.service import user_json
from services.core.users import repository


async def me(*, pool: asyncpg.Pool, user_id: str) -> dict[str, Any]:
    """The caller's own account."""
    row = await auth_repository.user_by_id(pool, user_id)
    if row is None:
        raise Unauthorized("The account no longer exists")
    return user_json(row)


async def list_users(*, pool: asyncpg.Pool, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of every account, oldest first."""
    rows = await repository.users_page(pool, after=decode_cursor(cursor), limit=limit + 1)
    return page(rows, limit, user_json)
