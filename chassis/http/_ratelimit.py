"""Rate limits shared by every instance, kept in Redis by the `limits` library."""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.data import REDIS
from chassis.errors import TooManyRequests
from chassis.settings import SETTINGS

RATE_LIMITER = web.AppKey["RateLimiter"]("rate_limiter")

log = logging.getLogger("relais.ratelimit")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RateLimiter:
    """Moving-window limits keyed by a name and an identity (account, client address)."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        # The app's connection pool (and its timeouts) serve the limits too: one pool a process.
        self._storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=key_prefix,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # taken by its redispy bridge
        )
        self._strategy = MovingWindowRateLimiter(self._storage)

    async def enforce(self, limit: str, *identity: str) -> None:
        """Count one hit; raise 429 with `Retry-After` when the limit is exhausted."""
        item = parse(limit)
        if not await self._strategy.hit(item, *identity):
            await self._refuse(item, identity)

    async def refuse_if_spent(self, limit: str, *identity: str) -> None:
        """Raise 429 with `Retry-After` if the limit is exhausted, without counting a hit."""
        if await self.spent(limit, *identity):
            await self._refuse(parse(limit), identity)

    async def spent(self, limit: str, *identity: str) -> bool:
        """Whether the limit is exhausted (the next hit would be refused)."""
        return not await self._strategy.test(parse(limit), *identity)

    async def count(self, limit: str, *identity: str) -> None:
        """Count one hit, whatever is left."""
        await self._strategy.hit(parse(limit), *identity)

    async def clear(self, limit: str, *identity: str) -> None:
        """Forget the hits counted for this identity."""
        await self._strategy.clear(parse(limit), *identity)

    async def _refuse(self, item: RateLimitItem, identity: tuple[str, ...]) -> None:
        stats = await self._strategy.get_window_stats(item, *identity)
        retry_after = math.ceil(stats.reset_time - time.time())
        raise TooManyRequests("Rate limit exceeded; retry later", retry_after=retry_after)


def client_address(request: web.Request) -> str:
    """The client's address, never a constant: `X-Real-IP` when the peer is a trusted proxy,
    else the peer's own address.

    Trusted proxies are TCP peers in `TRUSTED_PROXIES`, and every peer on the Unix socket: only
    its owner and the co-located NGINX' group may connect to it. A Unix peer that names no
    client is a local process, counted by its process id.
    """
    sock = request.transport.get_extra_info("socket") if request.transport else None
    on_unix_socket = sock is not None and sock.family == socket.AF_UNIX
    peer = request.remote or ""
    if on_unix_socket or _is_trusted(peer, request.app[SETTINGS].trusted_proxies):
        real_ip = _address(request.headers.get("X-Real-IP", ""))
        if real_ip is not None:
            return real_ip
    if sock is not None and on_unix_socket:
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return f"unix:{pid}"
    return peer


def _address(text: str) -> str | None:
    """`text` as a normalized IP address, or None if it is not one."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _is_trusted(peer: str, trusted: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in trusted)


async def rate_limiter(app: web.Application) -> AsyncIterator[None]:
    """The shared limiter as a `cleanup_ctx` resource."""
    settings = app[SETTINGS]
    app[RATE_LIMITER] = RateLimiter(app[REDIS], settings.redis_key_prefix + "limits")
    yield


def write_limited(handler: Handler) -> Handler:
    """Wrap a state-changing handler: limit it per client address, across all instances.

    Applied per route rather than as a middleware, so reads pay nothing for it.
    """

    @functools.wraps(handler)
    async def limited(request: web.Request) -> web.StreamResponse:
        limit = request.app[SETTINGS].write_rate_limit
        try:
            await request.app[RATE_LIMITER].enforce(limit, "write", client_address(request))
        except RedisError as exc:
            # Fail open: a missing shared counter must not stop every write; NGINX still limits.
            log.warning("write rate limit unavailable, request let through: %r", exc)
        return await handler(request)

    return limited
