"""Typed application and request keys of the chassis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

if TYPE_CHECKING:  # forward references only: these modules import the keys
    from opentelemetry.trace import Tracer  # noqa: F401

    from chassis.amqp import Broker  # noqa: F401
    from chassis.auth import Principal, TokenService  # noqa: F401
    from chassis.listen import PgListener  # noqa: F401
    from chassis.logs import AccessLog  # noqa: F401
    from chassis.metrics import Metrics  # noqa: F401
    from chassis.near_cache import InvalidationBus  # noqa: F401
    from chassis.ratelimit import RateLimiter  # noqa: F401
    from chassis.resources import BackgroundTasks  # noqa: F401
    from chassis.settings import ServiceSettings  # noqa: F401

SETTINGS = web.AppKey["ServiceSettings"]("settings")
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
METRICS = web.AppKey["Metrics"]("metrics")
ACCESS_LOG = web.AppKey["AccessLog"]("access_log")
TOKENS = web.AppKey["TokenService"]("tokens")
RATE_LIMITER = web.AppKey["RateLimiter"]("rate_limiter")
INVALIDATION_BUS = web.AppKey["InvalidationBus"]("invalidation_bus")
BROKER = web.AppKey["Broker"]("broker")
PG_LISTENER = web.AppKey["PgListener"]("pg_listener")
BACKGROUND = web.AppKey["BackgroundTasks"]("background")
# The tracer of server spans; None when the process does not trace.
TRACER = web.AppKey["Tracer | None"]("tracer")

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey["Principal"]("principal")
