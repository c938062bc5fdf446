"""Data: PostgreSQL and Redis as app resources, and caches (migrations are `chassis.migrations`,
which only `migrate` imports).

Pools as `cleanup_ctx` (`postgres_pool`, `redis_client`; `DB_POOL`, `REDIS`, `Conn`, `Db`; a
pool that counts its waits, `MeteredPool`, `metered_pool`, `bind_pool_gauges`;
`fetch_returned`, `execute_counted`, `apply_grants`), reads that tolerate lag from a streaming
replica (`replica_pool`, `read_tolerating_lag`, `REPLICA`) and the two-tier cache (`TieredCache`,
`tiered_cache`, `InvalidationBus`, `RecordedInvalidations`): a near cache in the process over
Redis, invalidated through Redis.
"""

from chassis.data._near_cache import (
    INVALIDATION_BUS,
    CachedBody,
    InvalidationBus,
    RecordedInvalidations,
    TieredCache,
    invalidation_bus,
    tiered_cache,
)
from chassis.data._pools import (
    DB_POOL,
    REDIS,
    Conn,
    Db,
    MeteredPool,
    apply_grants,
    bind_pool_gauges,
    execute_counted,
    fetch_returned,
    metered_pool,
    open_pool,
    postgres_pool,
    redis_client,
)
from chassis.data._replica import (
    REPLICA,
    REPLICA_FAILURES,
    Replica,
    read_tolerating_lag,
    replica_pool,
)

__all__ = [
    "DB_POOL",
    "INVALIDATION_BUS",
    "REDIS",
    "REPLICA",
    "REPLICA_FAILURES",
    "CachedBody",
    "Conn",
    "Db",
    "InvalidationBus",
    "MeteredPool",
    "RecordedInvalidations",
    "Replica",
    "TieredCache",
    "apply_grants",
    "bind_pool_gauges",
    "execute_counted",
    "fetch_returned",
    "invalidation_bus",
    "metered_pool",
    "open_pool",
    "postgres_pool",
    "read_tolerating_lag",
    "redis_client",
    "replica_pool",
    "tiered_cache",
]
