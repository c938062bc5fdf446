"""User accounts: reading them, the caller's sessions and password, and an admin's
verification of an address."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from chassis.errors import NotFound, Unauthorized
from chassis.http import Principal, TokenService, decode_cursor, page
from services.core.audit.service import Origin, record
from services.core.auth import repository as auth_repository
from services.core.auth.service import end_session, user_json
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


async def sessions(
    *, pool: asyncpg.Pool, principal: Principal, refresh_token_ttl: int
) -> dict[str, Any]:
    """The caller's live logins, most recently used first (the caller's own marked)."""
    rows = await auth_repository.live_sessions(
        pool, principal.user_id, unused_for=refresh_token_ttl
    )
    current = uuid.UUID(hex=principal.family)
    return {"items": [{**dict(row), "current": row["id"] == current} for row in rows]}


async def revoke_session(
    *,
    pool: asyncpg.Pool,
    tokens: TokenService,
    principal: Principal,
    session_id: str,
    origin: Origin,
) -> None:
    """End one of the caller's logins at once, on every instance."""
    async with pool.acquire() as conn, conn.transaction():
        if not await end_session(
            conn,
            tokens,
            user_id=principal.user_id,
            family=uuid.UUID(session_id).hex,
            origin=origin,
            reason="revoked by its owner",
        ):
            raise NotFound("No such session")


async def verify_email_for(
    *, pool: asyncpg.Pool, principal: Principal, user_id: str, origin: Origin
) -> dict[str, Any]:
    """An admin vouches for an account's address (support, synthetic accounts)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await auth_repository.user_by_id(conn, user_id)
        if row is None:
            raise NotFound("No such user")
        verified = await auth_repository.mark_email_verified(conn, user_id, row["email"])
        if verified is None:
            return user_json(row)  # verified already: nothing changes, nothing is audited
        await record(
            conn,
            "account.email_verified",
            origin,
            actor_id=principal.user_id,
            subject=row["email"],
            details={"by_admin": True, "user_id": user_id},
        )
    return user_json(verified)
