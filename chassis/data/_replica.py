"""Reads that tolerate lag (a catalog page, a report), from a streaming replica when the service
has one (`DATABASE_REPLICA_URL`): each instance measures the replica's replay lag every few
seconds, and sends those reads to the primary while the replica lags more than it tolerates or
fails to answer. Writes, and reads that must see them, stay on `DB_POOL`."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiohttp import web

from chassis.data._pools import DB_POOL, open_pool
from chassis.settings import SETTINGS
from chassis.tasks import background, repeat
from chassis.telemetry import METRICS, Metrics

T = TypeVar("T")

# A replica that cannot answer: refused, gone, starting, or a query cancelled by a conflict
# with the recovery it replays.
REPLICA_FAILURES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.SerializationError,
)

# Seconds behind: 0 when it has replayed everything it received (an idle primary makes the
# last replayed transaction old without the replica being behind).
LAG = """SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()),
                          0) END"""


class Replica:
    """The replica's pool and the instance's latest judgement of it."""

    def __init__(self, pool: asyncpg.Pool, max_lag: float, metrics: Metrics) -> None:
        self.pool = pool
        self.max_lag = max_lag
        self.usable = False
        self._lag = metrics.db_replica_lag.labels(metrics.service)
        self._usable = metrics.db_replica_usable.labels(metrics.service)
        self._up = metrics.db_replica_up.labels(metrics.service)
        self._reads = metrics.db_lag_tolerant_reads
        self._service = metrics.service

    async def measure(self) -> int:
        """Measure the lag; usable while it is within `max_lag`."""
        try:
            lag = float(await self.pool.fetchval(LAG, timeout=self.max_lag))
        except REPLICA_FAILURES:
            self.judge(math.nan)
            return 0
        self.judge(lag)
        return 0

    def judge(self, lag: float) -> None:
        """Record a measured lag (NaN: no answer)."""
        self.usable = lag <= self.max_lag  # NaN compares false
        self._up.set(0 if math.isnan(lag) else 1)
        self._lag.set(lag)
        self._usable.set(1 if self.usable else 0)

    def count(self, source: str) -> None:
        """Count a lag-tolerant read answered by `source`."""
        self._reads.labels(self._service, source).inc()


REPLICA = web.AppKey("replica", Replica)


async def replica_pool(app: web.Application) -> AsyncIterator[None]:
    """Open the replica's pool (lazily: a replica that is down does not stop the service) and
    measure its lag for the app's life; nothing without `DATABASE_REPLICA_URL`."""
    settings = app[SETTINGS]
    if not settings.database_replica_url:
        yield
        return
    pool = await open_pool(settings, settings.database_replica_url, min_size=0)
    replica = app[REPLICA] = Replica(pool, settings.replica_max_lag, app[METRICS])
    await replica.measure()
    every = settings.replica_check_interval
    async with background(
        app, repeat(replica.measure, every=every, what="replica lag", quiet=True), "replica-lag"
    ):
        yield
    await pool.close()


async def read_tolerating_lag(
    app: web.Application, read: Callable[[asyncpg.Pool], Awaitable[T]]
) -> T:
    """`read` on the replica while it is usable, else (or if it fails there) on the primary."""
    replica = app.get(REPLICA)
    if replica is None:
        return await read(app[DB_POOL])
    if replica.usable:
        try:
            result = await read(replica.pool)
        except REPLICA_FAILURES:
            replica.judge(math.nan)  # until the next measurement
            replica.count("fallback")
        else:
            replica.count("replica")
            return result
    else:
        replica.count("primary")
    return await read(app[DB_POOL])
