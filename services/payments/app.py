"""The payments worker's app: consumers, the report RPC and the outbox relay, with health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from chassis.amqp import COMMANDS, amqp_broker, broker_ready
from chassis.app import create_service_app
from chassis.consumer import Handler, Poison, consume_work_queue
from chassis.contracts import (
    ChargePayment,
    Contract,
    DailyReportRequest,
    ProviderEvent,
    ProviderEventV1,
    RefundPayment,
)
from chassis.health import DEFAULT_CHECKS, setup_health
from chassis.keys import BROKER, DB_POOL, REDIS
from chassis.listen import listening, setup_pg_listener
from chassis.outbox import outbox_relay
from chassis.resources import background, postgres_pool, redis_client, repeat
from chassis.rpc import RpcServer
from services.payments import service
from services.payments.keys import PAYMENTS_SETTINGS, PROVIDER
from services.payments.providers import GuardedProvider, Provider, SandboxProvider
from services.payments.settings import PaymentsSettings
from services.payments.stripe import StripeProvider

MIGRATIONS = Path(__file__).parent / "migrations"
COMMAND_QUEUE = "payments.commands"
COMMAND_TYPES = (ChargePayment, RefundPayment, ProviderEvent)


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


def command_handler(app: web.Application) -> Handler:
    """Route each command to its service function."""

    async def handle(contract: Contract, message: AbstractIncomingMessage) -> None:
        pool, provider, message_id = app[DB_POOL], app[PROVIDER], message.message_id or ""
        if isinstance(contract, ChargePayment):
            await service.charge(
                pool=pool, provider=provider, command=contract, message_id=message_id
            )
        elif isinstance(contract, RefundPayment):
            await service.refund(
                pool=pool, provider=provider, command=contract, message_id=message_id
            )
        elif isinstance(contract, ProviderEvent | ProviderEventV1):
            event = (
                ProviderEvent.from_v1(contract)
                if isinstance(contract, ProviderEventV1)
                else contract
            )
            await service.provider_event(
                pool=pool, provider=provider, event=event, message_id=message_id
            )
        else:
            raise Poison(f"{contract.type} is not a payments command")

    return handle


async def workers(app: web.Application) -> AsyncIterator[None]:
    """Consume the command queue, serve the report RPC and reconcile with the provider."""

    async def report(request: Contract) -> Contract:
        if not isinstance(request, DailyReportRequest):
            raise ValueError(f"{request.type} is not a report request")
        return await service.daily_report(pool=app[DB_POOL], request=request)

    settings = app[PAYMENTS_SETTINGS]
    consumer = await consume_work_queue(
        app, COMMAND_QUEUE, exchange=COMMANDS, contracts=COMMAND_TYPES, handler=command_handler(app)
    )
    reports = RpcServer(app[BROKER], DailyReportRequest.type_name(), report, prefetch=8)
    await reports.start()
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
    async with background(app, reconciler, "reconciler"):
        yield
    await reports.stop()
    await consumer.stop()


def create_app(settings: PaymentsSettings) -> web.Application:
    """Assemble the worker: resources, provider, relay, consumers, health and metrics."""
    app = create_service_app(settings)
    app[PAYMENTS_SETTINGS] = settings
    setup_pg_listener(app)
    app.cleanup_ctx.extend(
        [
            postgres_pool,
            redis_client,
            amqp_broker,
            provider_client,
            outbox_relay,
            workers,
            listening,
        ]
    )
    setup_health(app, {**DEFAULT_CHECKS, "rabbitmq": broker_ready})
    return app
