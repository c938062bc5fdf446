"""Data: PostgreSQL and Redis as app resources, and caches (migrations are `chassis.migrations`,
which only `migrate` imports).

Pools as `cleanup_ctx` (`postgres_pool`, `redis_client`; `DB_POOL`, `REDIS`, `Conn`, `Db`,
`fetch_returned`, `apply_grants`) and the two-tier cache (`TieredCache`, `tiered_cache`,
`InvalidationBus`, `RecordedInvalidations`): a near cache in the process over Redis,
invalidated through Redis.
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
    apply_grants,
    fetch_returned,
    postgres_pool,
    redis_client,
)

__all__ = [
    "DB_POOL",
    "INVALIDATION_BUS",
    "REDIS",
    "CachedBody",
    "Conn",
    "Db",
    "InvalidationBus",
    "RecordedInvalidations",
    "TieredCache",
    "apply_grants",
    "fetch_returned",
    "invalidation_bus",
    "postgres_pool",
    "redis_client",
    "tiered_cache",
]
