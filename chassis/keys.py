"""Typed application and request keys of the chassis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

if TYPE_CHECKING:
    from chassis.auth import Principal, TokenService
    from chassis.metrics import Metrics
    from chassis.near_cache import InvalidationBus
    from chassis.ratelimit import RateLimiter
    from chassis.settings import ServiceSettings

SETTINGS = web.AppKey["ServiceSettings"]("settings")
DB_POOL = web.AppKey("db_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
METRICS = web.AppKey["Metrics"]("metrics")
TOKENS = web.AppKey["TokenService"]("tokens")
RATE_LIMITER = web.AppKey["RateLimiter"]("rate_limiter")
INVALIDATION_BUS = web.AppKey["InvalidationBus"]("invalidation_bus")

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey["Principal"]("principal")
