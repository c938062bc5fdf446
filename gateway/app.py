"""The gateway's app: users' sockets on `/ws`, the queue of this instance that brings their
events, the journal queue shared by every instance, with health and metrics."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiohttp import web

from chassis.data import REDIS, redis_client
from chassis.http import DEFAULT_CHECKS, TOKENS, TokenService, create_service_app, setup_health
from chassis.messaging import (
    BROKER,
    EVENTS,
    amqp_broker,
    broker_ready,
    user_key,
)
from chassis.tasks import background, repeat
from chassis.telemetry import METRICS
from gateway import handlers
from gateway.keys import GATEWAY_SETTINGS, HUB
from gateway.metrics import GatewayMetrics
from gateway.push import views
from gateway.push.repository import Journal
from gateway.push.service import Hub, Inbox
from gateway.settings import GatewaySettings

# The instance's own queue, past which the broker drops the oldest events (an instance that
# stalls must not fill the broker; its clients catch up from the journal).
LIVE_QUEUE_MAX = 100_000


async def hub(app: web.Application) -> AsyncIterator[None]:
    """The hub, its journal and the token checks of open sockets; on shutdown every socket is
    closed with 1001 (`on_shutdown`, before the broker and Redis close)."""
    settings = app[GATEWAY_SETTINGS]
    # Each token is checked once per socket: caching it would only hold memory per socket.
    tokens = app[TOKENS] = TokenService(settings, app[REDIS], can_sign=False, cache_size=0)
    journal = Journal(
        app[REDIS],
        prefix=settings.redis_key_prefix,
        window=settings.gateway_replay_window,
        limit=settings.gateway_replay_max,
    )
    app[HUB] = Hub(
        GatewayMetrics(app[METRICS]),
        journal,
        send_queue=settings.gateway_send_queue,
        sockets_per_user=settings.gateway_sockets_per_user,
    )
    checks = repeat(
        lambda: app[HUB].check_tokens(tokens.revocations),
        every=settings.gateway_auth_check_interval,
        what="closing sockets whose token expired or was revoked",
    )
    async with background(app, checks, "socket token checks"):
        yield


async def live_events(app: web.Application) -> AsyncIterator[None]:
    """This instance's queue (exclusive: it goes with the connection), bound to the users whose
    sockets are here, pushed from in order. A robust channel declares it, its bindings and its
    consumer again after a reconnect."""
    channel = await _channel(app)
    queue = await channel.declare_queue(
        f"gateway.live.{uuid.uuid4().hex}",
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": LIVE_QUEUE_MAX},
    )

    async def bind(user_id: str) -> None:
        await queue.bind(EVENTS, routing_key=user_key(user_id))

    async def unbind(user_id: str) -> None:
        await queue.unbind(EVENTS, routing_key=user_key(user_id))

    hub = app[HUB]
    hub.route_with(bind, unbind)
    async with _intake(app, queue, functools.partial(handlers.push_live, hub), "live events"):
        yield
    await channel.close()


async def journal_queue(app: web.Application) -> AsyncIterator[None]:
    """Keep every user's events for their reconnecting clients: one queue for every instance,
    one of which consumes at a time (the others wait their turn), in order."""
    name, metrics = handlers.JOURNAL_QUEUE.name, app[METRICS]
    await handlers.JOURNAL_QUEUE.declare(app[BROKER], app[GATEWAY_SETTINGS])
    channel = await _channel(app)
    queue = await channel.get_queue(name, ensure=True)
    metrics.declare_queue(name, ["UnknownContract"])
    journal = functools.partial(handlers.journal, app[HUB], metrics)
    async with _intake(app, queue, journal, "journal"):
        consumers = metrics.consumers.labels(metrics.service, name)
        consumers.inc()
        yield
        consumers.dec()
    await channel.close()


async def _channel(app: web.Application) -> AbstractRobustChannel:
    channel = await app[BROKER].connection.channel()
    await channel.set_qos(prefetch_count=app[GATEWAY_SETTINGS].gateway_prefetch)
    return channel


@contextlib.asynccontextmanager
async def _intake(
    app: web.Application,
    queue: AbstractQueue,
    handle: Callable[[handlers.Deliveries], Awaitable[None]],
    name: str,
) -> AsyncIterator[None]:
    """Consume `queue` into an inbox whose task handles the deliveries in order."""
    inbox = Inbox(handle, batch=app[GATEWAY_SETTINGS].gateway_prefetch)
    async with background(app, inbox.run(), name):
        tag = await queue.consume(inbox.put)
        yield
        await queue.cancel(tag)


async def close_sockets(app: web.Application) -> None:
    """Say goodbye (1001) to every client before the server stops."""
    if HUB in app:
        await app[HUB].close_all(grace=app[GATEWAY_SETTINGS].shutdown_timeout / 2)


def create_app(settings: GatewaySettings) -> web.Application:
    """Assemble the gateway: Redis, the broker, the hub, its queues, `/ws`, health, metrics."""
    app = create_service_app(settings)
    app[GATEWAY_SETTINGS] = settings
    app.cleanup_ctx.extend([redis_client, amqp_broker, hub, live_events, journal_queue])
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/ws", views.socket, allow_head=False)
    checks = {name: check for name, check in DEFAULT_CHECKS.items() if name != "postgres"}
    setup_health(app, {**checks, "rabbitmq": broker_ready})
    return app
