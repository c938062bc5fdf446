"""PostgreSQL and Redis as `cleanup_ctx` contexts: startup and cleanup side by side."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy
from redis.asyncio import Redis

from chassis.settings import SETTINGS, ServiceSettings
from chassis.telemetry import METRICS, untraced

REDIS = web.AppKey("redis", Redis)

DB_POOL = web.AppKey("db_pool", asyncpg.Pool)

# What a repository function runs SQL on: one connection (in a transaction) or the pool.
Conn = asyncpg.Connection | PoolConnectionProxy
Db = asyncpg.Pool | Conn


async def fetch_returned(db: Db, query: str, *args: object) -> asyncpg.Record:
    """The row a `... RETURNING` statement that always affects one row produced."""
    row = await db.fetchrow(query, *args)
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


async def execute_counted(db: Db, query: str, *args: object) -> int:
    """Run an UPDATE or DELETE: how many rows it changed (from its command status)."""
    status = await db.execute(query, *args)
    return int(status.split()[-1])


async def apply_grants(conn: Conn, grants: str, *, role: str, schema: str) -> None:
    """Run `grants` (statements separated by `;`, with `{role}` and `{schema}` placeholders)
    for a role on a schema; grants are idempotent."""
    quoted = '"' + role.replace('"', '""') + '"'
    for statement in grants.format(schema=schema, role=quoted).split(";"):
        await conn.execute(statement)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on release: no code here changes session state (no SET,
    no LISTEN on pool connections, only transaction-scoped advisory locks); asyncpg still rolls
    back a transaction left open."""


class MeteredPool(asyncpg.Pool):
    """asyncpg's pool, which says how many callers wait for a connection and how long each
    took to get one: an exhausted pool shows as waits before it shows as latency."""

    waiting = 0
    # Told each acquisition's seconds (a histogram's `observe`), once bound.
    observe_wait: Callable[[float], None] | None = None

    async def _acquire(self, timeout: Any) -> Any:  # noqa: ASYNC109 - asyncpg's signature
        started = time.perf_counter()
        self.waiting += 1
        try:
            return await super()._acquire(timeout)  # type: ignore[misc]
        finally:
            self.waiting -= 1
            if self.observe_wait is not None:
                self.observe_wait(time.perf_counter() - started)


# `asyncpg.create_pool`'s defaults, which a pool built from its class must be given.
_POOL_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(asyncpg.create_pool).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY
}


def metered_pool(dsn: str, **options: Any) -> MeteredPool:
    """`asyncpg.create_pool` making a `MeteredPool` (await it to open it)."""
    return MeteredPool(dsn, **{**_POOL_DEFAULTS, **options})


async def open_pool(settings: ServiceSettings, dsn: str, *, min_size: int) -> MeteredPool:
    """A pool on the service's own schema at `dsn` (the primary's, or the replica's)."""
    return await metered_pool(
        dsn,
        min_size=min_size,
        max_size=settings.db_pool_max,
        reset=_keep_session,
        server_settings={
            "search_path": settings.database_schema,
            "application_name": settings.service_name,
            # A runaway query frees its connection instead of starving the pool.
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    )


async def postgres_pool(app: web.Application) -> AsyncIterator[None]:
    """Open the asyncpg pool on the service's own schema."""
    settings = app[SETTINGS]
    pool = await open_pool(settings, settings.database_url, min_size=settings.db_pool_min)
    app[DB_POOL] = pool
    bind_pool_gauges(app)
    yield
    await pool.close()


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """Open the Redis client; fail startup if Redis does not answer."""
    settings = app[SETTINGS]
    # Bounded waits: a read that finds Redis unresponsive falls back instead of hanging.
    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
    with untraced():  # startup, not a request
        await client.ping()
    app[REDIS] = client
    yield
    await client.aclose()


def bind_pool_gauges(app: web.Application) -> None:
    """Read the pool's size, use and waiting callers at scrape time; time each acquisition."""
    metrics, pool = app[METRICS], app[DB_POOL]
    metrics.db_pool_size.labels(metrics.service).set_function(lambda: app[DB_POOL].get_size())
    metrics.db_pool_in_use.labels(metrics.service).set_function(
        lambda: app[DB_POOL].get_size() - app[DB_POOL].get_idle_size()
    )
    if isinstance(pool, MeteredPool):
        waiting: Callable[[], float] = lambda: pool.waiting  # noqa: E731
        metrics.db_pool_waiting.labels(metrics.service).set_function(waiting)
        pool.observe_wait = metrics.db_pool_wait.labels(metrics.service).observe
