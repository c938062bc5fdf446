"""Claim checks: bytes too big for a message wait in Redis under a key the message carries.

The sender stores the bytes for as long as its call may last and deletes them when the call
ends, answered or not; the receiver reads them (a request redelivered to another server finds
them still there). Keys are `<prefix>claim:<random>`; a receiver redeems only keys of that
shape, so a message cannot make it read any other key.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from chassis.errors import ServiceUnavailable

# Seconds a claim outlives its call's deadline (the sender deletes it before, unless it died).
CLAIM_GRACE = 5.0


class ClaimCheck:
    """Stores and redeems claimed bytes in Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}claim:"

    @contextlib.asynccontextmanager
    async def holding(self, data: bytes, *, ttl: float) -> AsyncIterator[str]:
        """Store `data` for the block (at most `ttl` seconds and a grace) under the key yielded."""
        key = f"{self.prefix}{uuid.uuid4().hex}"
        await self.redis.set(key, data, px=int((ttl + CLAIM_GRACE) * 1000))
        try:
            yield key
        finally:
            await self.redis.delete(key)

    async def redeem(self, key: str) -> bytes:
        """The bytes stored under `key`; 503 if they are gone (the caller gave up) or the key
        is not a claim."""
        if not key.startswith(self.prefix):
            raise ServiceUnavailable("not a claim key")
        data = await self.redis.get(key)
        if not isinstance(data, bytes):
            raise ServiceUnavailable("the claimed file is gone: its caller stopped waiting")
        return data
