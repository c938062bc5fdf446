"""External resources as `cleanup_ctx` contexts: startup and cleanup side by side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy
from redis.asyncio import Redis

from chassis.keys import BACKGROUND, DB_POOL, REDIS, SETTINGS
from chassis.metrics import bind_pool_gauges
from chassis.tracing import untraced

log = logging.getLogger("relais.jobs")

# What a repository function runs SQL on: one connection (in a transaction) or the pool.
Conn = asyncpg.Connection | PoolConnectionProxy
Db = asyncpg.Pool | Conn


class TaskDied(RuntimeError):
    """A background task ended while its app runs."""


class BackgroundTasks:
    """The app's background tasks. One that ends while the app runs (an exception, or a
    return) is logged at once and fails the readiness check until the process restarts: a
    relay, listener or flusher that stopped would otherwise stop silently."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}

    def watch(self, task: asyncio.Task[None]) -> None:
        """Report `task` if it ends other than by being cancelled."""
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():  # stopped with its app
            return
        error = task.exception()
        self.ended[task.get_name()] = repr(error) if error else "returned"
        log.error("background task %s ended", task.get_name(), exc_info=error)

    def check(self) -> None:
        """Raise `TaskDied` naming every task that ended."""
        if self.ended:
            raise TaskDied(", ".join(f"{name} ({why})" for name, why in self.ended.items()))


@contextlib.asynccontextmanager
async def background(
    app: web.Application, coroutine: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[None]:
    """Run `coroutine` as a task of the app for the block's duration, then cancel it and wait
    for it; if it ends before, the app's `BackgroundTasks` report it.

    The task makes no spans of its own: polls, purges and listeners would bury the requests'
    traces (the outbox relay publishes each row under the context the row carries)."""
    with untraced():  # the task copies the context it is created in
        task = asyncio.create_task(coroutine, name=name)
    app[BACKGROUND].watch(task)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # an error it ended with was reported when it ended


async def repeat(
    job: Callable[[], Awaitable[int]], *, every: float, what: str, quiet: bool = False
) -> None:
    """Run `job` every `every` seconds for the app's life, logging how many things it did
    (unless `quiet`: doing some is its normal state) and any failure of a round (the next
    round retries)."""
    while True:
        try:
            count = await job()
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("%s failed: %r", what, exc)
        except Exception:
            log.exception("%s failed", what)
        else:
            if count and not quiet:
                log.info("%s: %d", what, count)
        await asyncio.sleep(every)


async def fetch_returned(db: Db, query: str, *args: object) -> asyncpg.Record:
    """The row a `... RETURNING` statement that always affects one row produced."""
    row = await db.fetchrow(query, *args)
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on release: no code here changes session state (no SET,
    no LISTEN on pool connections, only transaction-scoped advisory locks); asyncpg still rolls
    back a transaction left open."""


async def postgres_pool(app: web.Application) -> AsyncIterator[None]:
    """Open the asyncpg pool on the service's own schema."""
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        reset=_keep_session,
        server_settings={
            "search_path": settings.database_schema,
            "application_name": settings.service_name,
            # A runaway query frees its connection instead of starving the pool.
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    )
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
