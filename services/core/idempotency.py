"""`Idempotency-Key` for core's POST operations (IETF draft semantics, Stripe-style replay).

The key is locked for the request's transaction (another request with it → 409), its stored
outcome is replayed for `IDEMPOTENCY_RETENTION_HOURS` (the same key with another request → 422),
and the outcome is stored in the transaction of the effect, so both commit or neither does.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from chassis.data import Conn, Db, execute_counted
from chassis.errors import BadRequest, Conflict, Unprocessable
from chassis.http import Header, dumps

KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII
_KEY = re.compile(KEY_PATTERN)


def key_header(*, required: bool) -> Header:
    """How an operation documents its `Idempotency-Key`."""
    replay = "replays the first response for the same key and body"
    return Header(
        ("Required: " if required else "Optional: ")
        + replay
        + " (any 1 to 255 visible ASCII characters; a new UUID per operation is usual)",
        required,
        KEY_PATTERN,
        example="8e0b5c52-6f4a-4d1b-9c3e-2a7f1d6b0e94",
    )


@dataclass(frozen=True)
class IdempotentRequest:
    """One request's key, who sent it and what it asked for."""

    user_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    """The stored outcome of the key's first request."""

    status: int
    body: dict[str, Any]


def idempotency_key(request: web.Request, *, required: bool = False) -> str | None:
    """The `Idempotency-Key` header; 400 if it is malformed, or missing where required."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        if required:
            raise BadRequest("This operation requires an Idempotency-Key header")
        return None
    if not _KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


def fingerprint(*parts: object) -> str:
    """A hash of what a request asks for (operation, target, canonical body)."""
    return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()


async def claim(conn: Conn, request: IdempotentRequest, *, retention_hours: int) -> Replay | None:
    """Lock the key for this transaction; its first outcome if it has one (409, 422 otherwise)."""
    scope = f"idempotency:{request.user_id}:{request.key}"
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", scope):
        raise Conflict("A request with this Idempotency-Key is still in progress")
    stored = await conn.fetchrow(
        """SELECT request_hash, status_code, response FROM idempotency_keys
           WHERE user_id = $1::uuid AND key = $2
             AND created_at > now() - make_interval(hours => $3)""",
        request.user_id,
        request.key,
        retention_hours,
    )
    if stored is None:
        return None
    if stored["request_hash"] != request.fingerprint:
        raise Unprocessable("This Idempotency-Key was used with a different request")
    return Replay(stored["status_code"], orjson.loads(stored["response"]))


async def remember(conn: Conn, request: IdempotentRequest, status: int, body: object) -> None:
    """Store the outcome under the key (replacing an expired one), in the effect's transaction."""
    await conn.execute(
        """INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response)
           VALUES ($1::uuid, $2, $3, $4, $5::jsonb)
           ON CONFLICT (user_id, key) DO UPDATE
           SET request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code,
               response = EXCLUDED.response, created_at = now()""",
        request.user_id,
        request.key,
        request.fingerprint,
        status,
        dumps(body).decode(),
    )


async def delete_expired_keys(db: Db, *, retention_hours: int) -> int:
    """Forget idempotency keys older than the retention; how many were deleted."""
    return await execute_counted(
        db,
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        retention_hours,
    )
