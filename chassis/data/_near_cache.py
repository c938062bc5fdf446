"""A two-tier read cache: an in-process near cache over Redis, invalidated across instances.

Reads are served from process memory when possible, so a hot key costs no network round trip.
Every write publishes the key on a Redis channel. Each process listens on a raw asyncio protocol
that handles the message inside the event loop's I/O callback, before any request that arrived in
the same loop iteration runs: once a writer's `PUBLISH` has returned, no instance serves the old
value to a request that follows it. While the subscription is down the near cache is bypassed
(and emptied on reconnect), so a missed message can never leave a stale entry behind.

Redis fills use a lease (Facebook's memcache leases): one caller per key loads from the database,
the others wait for its value, and a write deletes the lease so a load that started before the
write cannot store the old value afterwards.

An invalidation cannot be lost: a write records it in the database in its own transaction
(`TieredCache.record`), and sends it once committed; if the process dies in between, every
instance's `RecordedInvalidations` sends what was recorded more than a moment ago, then forgets
it, so Redis never serves the old value for longer than that.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlparse

import asyncpg
import hiredis
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.data._pools import REDIS, Conn
from chassis.settings import SETTINGS
from chassis.tasks import background
from chassis.telemetry import METRICS, Metrics

INVALIDATION_BUS = web.AppKey["InvalidationBus"]("invalidation_bus")

log = logging.getLogger("relais.cache")

Loader = Callable[[], Awaitable[bytes | None]]
_ABSENT = b""  # cached "no such row": a real body is never empty

_FILL_IF_LEASED = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Subscriber(asyncio.Protocol):
    def __init__(self, bus: InvalidationBus) -> None:
        self._bus = bus
        self._reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.subscribed = loop.create_future()
        self.lost = loop.create_future()
        self.last_heard = loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._bus.handshake())

    def data_received(self, data: bytes) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                if not self.subscribed.done():
                    self.subscribed.set_exception(ConnectionError(str(reply)))
                return
            if isinstance(reply, list) and reply[0] == b"message":
                self._bus.deliver(reply[2])
            elif isinstance(reply, list) and reply[0] == b"subscribe":
                self._confirm()

    def _confirm(self) -> None:
        if not self.subscribed.done():
            self.subscribed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(exc or ConnectionError("closed"))
        if not self.lost.done():
            self.lost.set_result(None)


class InvalidationBus:
    """One Redis pub/sub subscription per process that fans invalidations out to near caches."""

    RECONNECT_DELAY = 0.5
    # A silent peer (a half-open connection) is found by PINGs; no answer in time drops it.
    HEARTBEAT = 2.0
    HEARTBEAT_TIMEOUT = 5.0

    def __init__(self, redis_url: str, channel: str) -> None:
        self._url = urlparse(redis_url)
        self.channel = channel
        self._caches: dict[str, NearCache] = {}
        self._protocol: _Subscriber | None = None
        self.connected = False

    def handshake(self) -> bytes:
        """The commands sent on a fresh connection: AUTH if needed, then SUBSCRIBE."""
        auth = b""
        if self._url.password:
            user = unquote(self._url.username or "default")
            auth = _command("AUTH", user, unquote(self._url.password))
        return auth + _command("SUBSCRIBE", self.channel)

    def register(self, namespace: str, cache: NearCache) -> None:
        """Deliver invalidations of keys `namespace:*` to `cache`."""
        self._caches[namespace] = cache

    def deliver(self, payload: bytes) -> None:
        """Drop one key (`namespace:key`) from its near cache."""
        namespace, _, key = payload.decode().partition(":")
        cache = self._caches.get(namespace)
        if cache is not None:
            cache.invalidate(key)

    async def connect(self) -> None:
        """Subscribe, failing loudly if Redis is unreachable."""
        await self._connect()

    def close(self) -> None:
        """Close the subscription."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._set_connected(False)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _Subscriber(self),
            self._url.hostname or "127.0.0.1",
            self._url.port or 6379,
            ssl=self._url.scheme == "rediss" or None,
        )
        try:
            await asyncio.wait_for(protocol.subscribed, timeout=5)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        self._protocol = protocol
        self._set_connected(True)

    async def keep_alive(self) -> None:
        """Reconnect whenever the subscription is lost (runs for the app's life)."""
        while True:
            assert self._protocol is not None
            await self._until_lost(self._protocol)
            self._set_connected(False)
            log.warning("invalidation subscription lost; near caches bypassed until it is back")
            while not self.connected:
                await asyncio.sleep(self.RECONNECT_DELAY)
                try:
                    await self._connect()
                except (OSError, ConnectionError, TimeoutError) as exc:
                    log.warning("invalidation subscription retry failed: %s", exc)

    async def _until_lost(self, protocol: _Subscriber) -> None:
        loop = asyncio.get_running_loop()
        while not protocol.lost.done():
            await asyncio.wait([protocol.lost], timeout=self.HEARTBEAT)
            if protocol.lost.done() or protocol.transport is None:
                return
            if loop.time() - protocol.last_heard > self.HEARTBEAT_TIMEOUT:
                log.warning("invalidation subscription silent; dropping it")
                protocol.transport.abort()
                await protocol.lost
                return
            protocol.transport.write(_command("PING"))

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        # Whatever was published while we were away is unknown: start empty.
        for cache in self._caches.values():
            cache.clear()


@dataclass(frozen=True, slots=True)
class CachedBody:
    """A cached response body and its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> CachedBody:
        """Wrap a body, deriving its ETag from its bytes."""
        return cls(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


class NearCache:
    """A bounded in-process LRU with a TTL, valid only while its bus is connected."""

    def __init__(self, bus: InvalidationBus, *, max_entries: int, ttl: float) -> None:
        self._bus = bus
        self._entries: OrderedDict[str, tuple[float, CachedBody | None]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl
        self.epoch = 0  # bumped by every invalidation; a fill that spans one is dropped

    def get(self, key: str) -> tuple[bool, CachedBody | None]:
        """`(True, value)` on a fresh hit (None value: known absent), else `(False, None)`."""
        entry = self._entries.get(key)
        if entry is None or not self._bus.connected:
            return False, None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: str, value: CachedBody | None, epoch: int) -> None:
        """Store a value loaded during `epoch`, unless something was invalidated since."""
        if epoch != self.epoch or not self._bus.connected:
            return
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def invalidate(self, key: str) -> None:
        """Forget one key."""
        self._entries.pop(key, None)
        self.epoch += 1

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self.epoch += 1


class TieredCache:
    """Cache-aside over Redis with a near cache in front, for one namespace of keys."""

    RETRY_INTERVAL = 0.5
    LOCK_TTL_MS = 2_000
    WAIT_POLL = 0.005
    WAIT_LIMIT = 1.0

    def __init__(
        self,
        *,
        namespace: str,
        redis: Redis,
        bus: InvalidationBus,
        key_prefix: str,
        ttl: float,
        absent_ttl: float,
        metrics: Metrics,
        near_entries: int = 10_000,
        near_ttl: float = 60.0,
    ) -> None:
        self.namespace = namespace
        self._redis = redis
        self._bus = bus
        self._prefix = f"{key_prefix}cache:{namespace}:"
        self._ttl_ms = int(ttl * 1000)
        self._absent_ttl_ms = int(absent_ttl * 1000)
        self.near = NearCache(bus, max_entries=near_entries, ttl=near_ttl)
        bus.register(namespace, self.near)
        self._fill = redis.register_script(_FILL_IF_LEASED)
        self._inflight: dict[str, asyncio.Future[CachedBody | None]] = {}
        self._unsent: set[str] = set()
        self._reads = {
            source: metrics.cache.labels(metrics.service, namespace, source)
            for source in ("near", "redis", "database")
        }

    async def get(self, key: str, loader: Loader) -> CachedBody | None:
        """The cached body for `key`, loading it once (across instances) on a miss."""
        hit, value = self.near.get(key)
        if hit:
            self._reads["near"].inc()
            return value
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedBody | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        epoch = self.near.epoch
        try:
            raw = await self._fetch(key, loader)
            value = None if raw is None else CachedBody.of(raw)
            self.near.put(key, value, epoch)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._inflight[key]

    async def record(self, conn: Conn, *keys: str) -> None:
        """Record the invalidation of `keys` in the caller's transaction (call `invalidate`
        once it commits): should this process die before, another instance sends it."""
        await conn.execute(
            "INSERT INTO cache_invalidations (namespace, key) SELECT $1, unnest($2::text[])",
            self.namespace,
            list(keys),
        )

    async def invalidate(self, *keys: str) -> None:
        """Delete keys and their leases from Redis and tell every instance to drop them.

        The caller's write has committed: if Redis cannot be reached now, the keys are kept and
        sent again by `keep_invalidating` (meanwhile every near cache is bypassed, since no bus
        is connected while Redis is away).
        """
        for key in keys:
            self.near.invalidate(key)
        try:
            await self._send_invalidations(keys)
        except RedisError as exc:
            self._unsent.update(keys)
            log.warning("invalidation of %d %s keys deferred: %r", len(keys), self.namespace, exc)

    async def invalidate_now(self, keys: Iterable[str]) -> None:
        """Drop `keys` here, in Redis and on every instance; raise if Redis cannot be reached."""
        for key in keys:
            self.near.invalidate(key)
        await self._send_invalidations(keys)

    async def _send_invalidations(self, keys: Iterable[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.delete(self._prefix + key, self._prefix + key + ":lease")
                pipe.publish(self._bus.channel, f"{self.namespace}:{key}")
            await pipe.execute()

    async def keep_invalidating(self) -> None:
        """Resend deferred invalidations until they reach Redis (runs for the app's life)."""
        while True:
            await asyncio.sleep(self.RETRY_INTERVAL)
            if not self._unsent:
                continue
            keys, self._unsent = self._unsent, set()
            try:
                await self._send_invalidations(keys)
            except RedisError:
                self._unsent |= keys
            else:
                log.info("sent %d deferred %s invalidations", len(keys), self.namespace)

    async def _fetch(self, key: str, loader: Loader) -> bytes | None:
        try:
            return await self._fetch_through_redis(key, loader)
        except RedisError as exc:
            # Degrade to the database rather than fail the read; nothing is cached meanwhile.
            log.warning("cache %s unavailable, reading through: %r", self.namespace, exc)
            self._reads["database"].inc()
            return await loader()

    async def _fetch_through_redis(self, key: str, loader: Loader) -> bytes | None:
        redis_key = self._prefix + key
        lease_key = redis_key + ":lease"
        deadline = time.monotonic() + self.WAIT_LIMIT
        while True:
            cached = await self._redis.get(redis_key)
            if isinstance(cached, bytes):
                self._reads["redis"].inc()
                return cached or None
            token = uuid.uuid4().hex
            if await self._redis.set(lease_key, token, nx=True, px=self.LOCK_TTL_MS):
                self._reads["database"].inc()
                loaded = await loader()
                ttl = self._ttl_ms if loaded is not None else self._absent_ttl_ms
                await self._fill(keys=[redis_key, lease_key], args=[token, loaded or _ABSENT, ttl])
                return loaded
            if time.monotonic() > deadline:
                # The lease holder is slow or gone: load without caching rather than wait on.
                self._reads["database"].inc()
                return await loader()
            await asyncio.sleep(self.WAIT_POLL)


class RecordedInvalidations:
    """Sends the invalidations writes recorded more than `grace` seconds ago, then forgets them.

    The writer itself sends each one at once after its commit; this catches those a writer
    never sent (it died in between). Instances share the table: each claims rows with `FOR
    UPDATE SKIP LOCKED`, and a failure to reach Redis leaves the rows for the next round."""

    def __init__(self, pool: asyncpg.Pool, caches: Iterable[TieredCache], *, grace: float) -> None:
        self.pool = pool
        self.caches = {cache.namespace: cache for cache in caches}
        self.grace = grace

    async def send_due(self, batch: int = 1000) -> int:
        """Send one batch of invalidations due; how many were sent."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, namespace, key FROM cache_invalidations
                   WHERE created_at < clock_timestamp() - make_interval(secs => $1)
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""",
                self.grace,
                batch,
            )
            keys: dict[str, set[str]] = {}
            for row in rows:
                keys.setdefault(row["namespace"], set()).add(row["key"])
            for namespace, names in keys.items():
                cache = self.caches.get(namespace)
                if cache is not None:
                    await cache.invalidate_now(names)
            if rows:
                await conn.execute(
                    "DELETE FROM cache_invalidations WHERE id = ANY($1::bigint[])",
                    [row["id"] for row in rows],
                )
        return len(rows)


async def invalidation_bus(app: web.Application) -> AsyncIterator[None]:
    """The process' invalidation subscription as a `cleanup_ctx` resource."""
    settings = app[SETTINGS]
    bus = InvalidationBus(settings.redis_url, settings.redis_key_prefix + "invalidate")
    await bus.connect()
    app[INVALIDATION_BUS] = bus
    async with background(app, bus.keep_alive(), "invalidation-bus"):
        yield
    bus.close()


def tiered_cache(
    app: web.Application, namespace: str, *, ttl: float, absent_ttl: float
) -> TieredCache:
    """A `TieredCache` over the app's Redis client and invalidation bus."""
    return TieredCache(
        namespace=namespace,
        redis=app[REDIS],
        bus=app[INVALIDATION_BUS],
        key_prefix=app[SETTINGS].redis_key_prefix,
        ttl=ttl,
        absent_ttl=absent_ttl,
        metrics=app[METRICS],
    )
