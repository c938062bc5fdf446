"""The core service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from chassis.app import create_service_app
from chassis.auth import TokenService
from chassis.health import setup_health
from chassis.keys import DB_POOL, REDIS, TOKENS
from chassis.near_cache import invalidation_bus, tiered_cache
from chassis.openapi import openapi_document, setup_docs
from chassis.ratelimit import rate_limiter
from chassis.resources import background, postgres_pool, redis_client
from chassis.routes import ApiRoutes
from services.core.auth.service import Passwords
from services.core.auth.views import routes as auth_routes
from services.core.catalog.views import routes as catalog_routes
from services.core.keys import CORE_SETTINGS, PASSWORDS, PRODUCT_CACHE
from services.core.orders.service import purge_idempotency_keys
from services.core.orders.views import routes as order_routes
from services.core.settings import CoreSettings
from services.core.users.views import routes as user_routes

ROUTE_TABLES: tuple[ApiRoutes, ...] = (auth_routes, user_routes, catalog_routes, order_routes)
MIGRATIONS = Path(__file__).parent / "migrations"


def api_document() -> dict[str, object]:
    """The OpenAPI document of the core API."""
    return openapi_document(title="Relais core API", version="1.0.0", tables=ROUTE_TABLES)


async def core_state(app: web.Application) -> AsyncIterator[None]:
    """Core's own state, built on the chassis resources opened before it."""
    settings = app[CORE_SETTINGS]
    app[TOKENS] = TokenService(settings, app[REDIS], can_sign=True)
    app[PASSWORDS] = Passwords(settings)
    app[PRODUCT_CACHE] = tiered_cache(
        app, "product", ttl=settings.product_cache_ttl, absent_ttl=settings.product_absent_ttl
    )
    purge = purge_idempotency_keys(
        pool=app[DB_POOL], retention_hours=settings.idempotency_retention_hours, every=3600
    )
    async with (
        background(app[PRODUCT_CACHE].keep_invalidating(), "invalidations"),
        background(purge, "idempotency-purge"),
    ):
        yield


def create_app(settings: CoreSettings) -> web.Application:
    """Assemble the core app: chassis resources, health, API routes and their docs."""
    app = create_service_app(settings)
    app[CORE_SETTINGS] = settings
    app.cleanup_ctx.extend(
        [postgres_pool, redis_client, rate_limiter, invalidation_bus, core_state]
    )
    setup_health(app)
    for table in ROUTE_TABLES:
        table.add_to(app)
    setup_docs(app, api_document(), Path(swagger_ui_bundle.swagger_ui_path))
    return app
