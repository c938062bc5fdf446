"""TODO."""

from chassis.data._migrations import execute_script, run_env, upgrade
from chassis.data._near_cache import (
    CachedBody,
    INVALIDATION_BUS,
    InvalidationBus,
    RecordedInvalidations,
    TieredCache,
    invalidation_bus,
    tiered_cache,
)
from chassis.data._pools import (
    Conn,
    DB_POOL,
    Db,
    REDIS,
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
    "execute_script",
    "fetch_returned",
    "invalidation_bus",
    "postgres_pool",
    "redis_client",
    "run_env",
    "tiered_cache",
    "upgrade",
]
