"""The core service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import swagger_ui
from aiohttp import web

from chassis.data import (
    DB_POOL,
    REDIS,
    RecordedInvalidations,
    invalidation_bus,
    postgres_pool,
    redis_client,
    replica_pool,
    tiered_cache,
)
from chassis.http import (
    DEFAULT_CHECKS,
    TOKENS,
    ApiRoutes,
    TokenService,
    create_service_app,
    openapi_document,
    rate_limiter,
    setup_docs,
    setup_health,
)
from chassis.messaging import (
    BROKER,
    EVENTS,
    PG_LISTENER,
    RpcClient,
    amqp_broker,
    broker_ready,
    consume_work_queue,
    listening,
    outbox_relay,
    setup_pg_listener,
)
from chassis.tasks import background, repeat
from chassis.telemetry import METRICS
from services.core import handlers
from services.core.ai.chat import Conversations, LanguageModel
from services.core.ai.views import routes as ai_routes
from services.core.audit.views import routes as audit_routes
from services.core.auth.service import Passwords
from services.core.auth.views import routes as auth_routes
from services.core.catalog.views import routes as catalog_routes
from services.core.checkout.events import SETTLED_CHANNEL
from services.core.checkout.views import routes as payment_routes
from services.core.checkout.waiting import SettlementWaiters
from services.core.idempotency import delete_expired_keys
from services.core.keys import (
    CHECKOUT_METRICS,
    CONVERSATIONS,
    CORE_SETTINGS,
    LANGUAGE_MODEL,
    MAILER,
    PASSWORDS,
    PRODUCT_CACHE,
    RPC_CLIENT,
    SETTLEMENTS,
)
from services.core.mail import configured_mailer, purge_outbox
from services.core.metrics import CheckoutMetrics
from services.core.orders.service import release_unpaid_orders
from services.core.orders.views import routes as order_routes
from services.core.settings import CoreSettings
from services.core.two_factor.views import routes as two_factor_routes
from services.core.users.views import routes as user_routes

ROUTE_TABLES: tuple[ApiRoutes, ...] = (
    auth_routes,
    two_factor_routes,
    user_routes,
    audit_routes,
    catalog_routes,
    order_routes,
    payment_routes,
    ai_routes,
)
MIGRATIONS = Path(__file__).parent / "migrations"
EVENT_QUEUE = "core.payment-events"
# Days the development outbox keeps a message (its links expire within two).
MAIL_OUTBOX_RETENTION_DAYS = 7
# Seconds a write has to send its own invalidations before any instance sends them for it.
INVALIDATION_GRACE = 1.0


def api_document() -> dict[str, object]:
    """The OpenAPI document of the core API."""
    return openapi_document(title="Relais core API", version="1.0.0", tables=ROUTE_TABLES)


async def core_state(app: web.Application) -> AsyncIterator[None]:
    """Core's own state, built on the chassis resources opened before it."""
    settings = app[CORE_SETTINGS]
    app[TOKENS] = TokenService(settings, app[REDIS], can_sign=True)
    app[PASSWORDS] = Passwords(settings)
    app[MAILER] = configured_mailer(settings, app[DB_POOL])
    app[PRODUCT_CACHE] = tiered_cache(
        app, "product", ttl=settings.product_cache_ttl, absent_ttl=settings.product_absent_ttl
    )
    app[SETTLEMENTS] = waiters = SettlementWaiters()
    app[PG_LISTENER].subscribe(SETTLED_CHANNEL, waiters.notify)
    pool, cache = app[DB_POOL], app[PRODUCT_CACHE]
    purge = repeat(
        lambda: delete_expired_keys(pool, retention_hours=settings.idempotency_retention_hours),
        every=3600,
        what="purging expired idempotency keys",
    )
    purge_mail = repeat(
        lambda: purge_outbox(pool, retention_days=MAIL_OUTBOX_RETENTION_DAYS),
        every=3600,
        what="purging the development outbox",
    )
    release = repeat(
        lambda: release_unpaid_orders(
            pool=pool, cache=cache, hold_seconds=settings.payment_hold_seconds
        ),
        every=settings.order_sweep_interval,
        what="cancelling orders left unpaid past the hold",
    )
    recorded = RecordedInvalidations(pool, [cache], grace=INVALIDATION_GRACE)
    resend = repeat(recorded.send_due, every=1.0, what="sending recorded invalidations", quiet=True)
    async with (
        background(app, app[PRODUCT_CACHE].keep_invalidating(), "invalidations"),
        background(app, resend, "recorded-invalidations"),
        background(app, purge, "idempotency-purge"),
        background(app, purge_mail, "mail-outbox-purge"),
        background(app, release, "unpaid-order-release"),
    ):
        yield


async def assistant(app: web.Application) -> AsyncIterator[None]:
    """The shopping assistant's conversations (Redis) and its language model, if configured."""
    settings = app[CORE_SETTINGS]
    app[CONVERSATIONS] = Conversations(
        app[REDIS],
        settings.redis_key_prefix,
        ttl=settings.ai_chat_ttl,
        turns=settings.ai_chat_turns,
    )
    if not (settings.llm_base_url and settings.llm_api_key.get_secret_value()):
        app[LANGUAGE_MODEL] = None
        yield
        return
    async with aiohttp.ClientSession() as session:
        app[LANGUAGE_MODEL] = LanguageModel(
            session,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            connect_timeout=settings.llm_connect_timeout,
            read_timeout=settings.llm_read_timeout,
            total_timeout=settings.llm_total_timeout,
            breaker_threshold=settings.llm_breaker_threshold,
            breaker_reset=settings.llm_breaker_reset,
        )
        yield


async def payment_events(app: web.Application) -> AsyncIterator[None]:
    """Consume the payments service's events; call its RPCs."""
    app[RPC_CLIENT] = rpc = RpcClient(app[BROKER], service=app[CORE_SETTINGS].service_name)
    await rpc.start()
    consumer = await consume_work_queue(app, EVENT_QUEUE, exchange=EVENTS, handlers=handlers.EVENTS)
    yield
    await consumer.stop()
    await rpc.stop()


def create_app(settings: CoreSettings) -> web.Application:
    """Assemble the core app: chassis resources, health, API routes and their docs."""
    app = create_service_app(settings)
    app[CORE_SETTINGS] = settings
    app[CHECKOUT_METRICS] = CheckoutMetrics(app[METRICS])
    setup_pg_listener(app)
    app.cleanup_ctx.extend(
        [
            postgres_pool,
            replica_pool,
            redis_client,
            rate_limiter,
            invalidation_bus,
            amqp_broker,
            core_state,
            assistant,
            outbox_relay,
            payment_events,
            listening,
        ]
    )
    setup_health(app, {**DEFAULT_CHECKS, "rabbitmq": broker_ready})
    for table in ROUTE_TABLES:
        table.add_to(app)
    setup_docs(app, api_document(), Path(swagger_ui.__file__).parent / "static")
    return app
