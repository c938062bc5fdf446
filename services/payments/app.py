"""The payments service's app: consumers, the report RPC, the outbox relay and webhook intake,
with health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from chassis.data import DB_POOL, REDIS, postgres_pool, redis_client, replica_pool
from chassis.http import (
    DEFAULT_CHECKS,
    ApiRoutes,
    create_service_app,
    openapi_document,
    rate_limiter,
    setup_health,
)
from chassis.messaging import (
    COMMANDS,
    amqp_broker,
    broker_ready,
    consume_work_queue,
    listening,
    outbox_relay,
    serving_rpcs,
    setup_pg_listener,
)
from chassis.tasks import background, repeat
from services.payments import handlers, service
from services.payments.keys import PAYMENTS_SETTINGS, PROVIDER, WEBHOOK_SECRET
from services.payments.providers import GuardedProvider, Provider, SandboxProvider
from services.payments.settings import PaymentsSettings
from services.payments.stripe import StripeProvider
from services.payments.webhooks.views import routes as webhook_routes

MIGRATIONS = Path(__file__).parent / "migrations"
ROUTE_TABLES: tuple[ApiRoutes, ...] = (webhook_routes,)


def api_document() -> dict[str, object]:
    """The OpenAPI document of the payments service's HTTP operations."""
    return openapi_document(title="Relais payments API", version="1.0.0", tables=ROUTE_TABLES)


async def provider_client(app: web.Application) -> AsyncIterator[None]:
    """The configured provider, guarded by timeout, retries and a circuit breaker."""
    settings = app[PAYMENTS_SETTINGS]
    async with aiohttp.ClientSession() as session:
        provider: Provider
        if settings.provider == "stripe" and settings.stripe_secret_key:
            provider = StripeProvider(
                session, base_url=settings.stripe_api_base, secret_key=settings.stripe_secret_key
            )
        else:
            provider = SandboxProvider(
                app[REDIS],
                prefix=settings.redis_key_prefix,
                latency=settings.sandbox_latency_ms / 1000,
                failure_rate=settings.sandbox_failure_rate,
            )
        app[PROVIDER] = GuardedProvider(
            provider,
            timeout=settings.provider_timeout,
            attempts=settings.provider_attempts,
            breaker_threshold=settings.breaker_threshold,
            breaker_reset=settings.breaker_reset_seconds,
        )
        yield


async def workers(app: web.Application) -> AsyncIterator[None]:
    """Consume the command queue, serve the RPCs and reconcile with the provider."""
    settings = app[PAYMENTS_SETTINGS]
    consumer = await consume_work_queue(
        app, handlers.COMMAND_QUEUE, exchange=COMMANDS, handlers=handlers.COMMANDS
    )
    reconciler = repeat(
        lambda: service.reconcile(
            pool=app[DB_POOL],
            provider=app[PROVIDER],
            older_than=settings.reconcile_after,
            give_up_after=settings.payment_action_timeout,
        ),
        every=settings.reconcile_interval,
        what="settling payments and refunds left in flight",
    )
    async with (
        serving_rpcs(app, handlers.RPCS, prefetch=8),
        background(app, reconciler, "reconciler"),
    ):
        yield
    await consumer.stop()


def create_app(settings: PaymentsSettings) -> web.Application:
    """Assemble the service: resources, provider, relay, consumers, webhook intake, health and
    metrics."""
    app = create_service_app(settings)
    app[PAYMENTS_SETTINGS] = settings
    app[WEBHOOK_SECRET] = settings.webhook_secret()
    setup_pg_listener(app)
    app.cleanup_ctx.extend(
        [
            postgres_pool,
            replica_pool,
            redis_client,
            rate_limiter,
            amqp_broker,
            provider_client,
            outbox_relay,
            workers,
            listening,
        ]
    )
    setup_health(app, {**DEFAULT_CHECKS, "rabbitmq": broker_ready})
    for table in ROUTE_TABLES:
        table.add_to(app)
    return app
