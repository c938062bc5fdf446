"""RabbitMQ through aio-pika: one robust connection per process, confirmed publishes, topology.

Exchanges (declared by whoever connects, idempotently):

    relais.commands  direct  commands to a worker, routing key = contract type
    relais.events    topic   domain events, routing key = contract type
    relais.rpc       direct  RPC requests, routing key = method
    relais.dlx       direct  dead letters, routing key = the queue they died in

A work queue `q` is a quorum queue dead-lettering into `relais.dlx` after `delivery_limit`
deliveries, with `q.dlq` bound there, and retry queues `q.retry.<delay>ms` whose messages wait
out a back-off delay and then return to `q`. A queue's arguments cannot change once declared, so
retry queues are named by their delay: new delays declare new queues instead of failing startup.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    HeadersType,
)
from aiohttp import web
from pydantic import BaseModel

from chassis.messaging._envelope import encode, message_type
from chassis.settings import SETTINGS

BROKER = web.AppKey["Broker"]("broker")

log = logging.getLogger("relais.amqp")

COMMANDS = "relais.commands"
EVENTS = "relais.events"
RPC = "relais.rpc"
DEAD_LETTERS = "relais.dlx"
EXCHANGES = {
    COMMANDS: aio_pika.ExchangeType.DIRECT,
    EVENTS: aio_pika.ExchangeType.TOPIC,
    RPC: aio_pika.ExchangeType.DIRECT,
    DEAD_LETTERS: aio_pika.ExchangeType.DIRECT,
}
DEFAULT_EXCHANGE = ""
PUBLISH_TIMEOUT = 10.0
# Headers our consumers read and write.
ATTEMPT_HEADER = "x-relais-attempt"
REASON_HEADER = "x-relais-reason"
QUEUE_HEADER = "x-relais-queue"
# When a consumer dead-lettered the message (Unix seconds).
DEAD_AT_HEADER = "x-relais-dead-at"
# When the fact a message announces happened, in Unix microseconds (an integer: the AMQP
# `timestamp` property holds whole seconds, and a float header travels as a 32-bit float).
OCCURRED_AT_HEADER = "x-relais-occurred-at"
# RabbitMQ's sender-selected distribution: a message is also routed by each of these keys.
CC_HEADER = "CC"

# Quorum queues dead-letter at least once only with reject-publish overflow.
_QUORUM = {
    "x-queue-type": "quorum",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


@dataclass(frozen=True)
class BrokerPermissions:
    """What one service's broker user may do in the stack's vhost (RabbitMQ's regexes over
    exchange and queue names): declare (`configure`), publish or bind into (`write`), consume
    or bind from (`read`); `topics` narrows, per topic exchange, the routing keys it may
    publish and bind."""

    configure: str
    write: str
    read: str
    topics: dict[str, tuple[str, str]] = field(default_factory=dict)


def names(*patterns: str) -> str:
    """A RabbitMQ permission regex matching exactly the names or patterns given."""
    return "^(" + "|".join(patterns) + ")$"


# Every service declares the stack's exchanges when it connects.
ALL_EXCHANGES = r"relais\.(commands|events|rpc|dlx)"
DEFAULT = r"amq\.default"


def user_key(user_id: object) -> str:
    """The routing key that reaches one user's sockets (an event names it in `CC`)."""
    return f"user.{user_id}"


def announcement_headers(*, to_user: object | None = None) -> dict[str, Any]:
    """The headers of an event happening now: when, and (`to_user`) the user whose sockets it
    reaches too."""
    headers: dict[str, Any] = {OCCURRED_AT_HEADER: time.time_ns() // 1000}
    if to_user is not None:
        headers[CC_HEADER] = [user_key(to_user)]
    return headers


def occurred_at(message: aio_pika.abc.AbstractMessage) -> float:
    """When the fact a message announces happened (its publish time if it does not say)."""
    value = (message.headers or {}).get(OCCURRED_AT_HEADER)
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1_000_000
    stamp = message.timestamp
    return stamp.timestamp() if stamp is not None else time.time()


def dead_letter_queue(queue: str) -> str:
    """Where `queue`'s dead letters wait."""
    return f"{queue}.dlq"


def retry_queue(queue: str, delay: float) -> str:
    """Where a message of `queue` waits `delay` seconds before it is delivered again."""
    return f"{queue}.retry.{round(delay * 1000)}ms"


def message_for(
    contract: BaseModel,
    *,
    message_id: str | None = None,
    headers: HeadersType | None = None,
    persistent: bool = True,
    **properties: Any,
) -> aio_pika.Message:
    """A message carrying `contract`, its type in the AMQP `type` property too."""
    return aio_pika.Message(
        encode(contract),
        message_id=message_id or str(uuid.uuid4()),
        type=message_type(contract),
        content_type="application/json",
        delivery_mode=(
            aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        ),
        timestamp=time.time(),
        headers=headers or {},
        **properties,
    )


class Broker:
    """The process's robust connection and its confirming publisher channel."""

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self.connection = connection
        self.channel: AbstractRobustChannel
        self._exchanges: dict[str, AbstractExchange] = {}
        self._reopening = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, *, name: str) -> Broker:
        """Connect (retrying in the background after a loss) and declare the exchanges."""
        connection = await aio_pika.connect_robust(
            url, reconnect_interval=1.0, client_properties={"connection_name": name}
        )
        broker = cls(connection)
        await broker._open_channel()
        return broker

    async def _open_channel(self) -> None:
        # Unroutable publishes raise instead of vanishing; every publish awaits its confirm.
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        exchanges: dict[str, AbstractExchange] = {DEFAULT_EXCHANGE: channel.default_exchange}
        for exchange, kind in EXCHANGES.items():
            exchanges[exchange] = await channel.declare_exchange(exchange, kind, durable=True)
        self.channel, self._exchanges = channel, exchanges

    async def publish(
        self, exchange: str, routing_key: str, message: aio_pika.abc.AbstractMessage
    ) -> None:
        """Publish and wait for the broker's confirm; raise if unroutable, refused or lost.

        A robust channel is restored after a reconnect, but one whose restore failed stays
        closed for good (seen once in a few broker restarts): a publish that finds it closed
        while the connection is up opens a new one and tries once more."""
        try:
            await self._publish(exchange, routing_key, message)
        except aio_pika.exceptions.ChannelInvalidStateError:
            if self.connection.is_closed:
                raise
            await self._replace_closed_channel()
            await self._publish(exchange, routing_key, message)

    async def _publish(
        self, exchange: str, routing_key: str, message: aio_pika.abc.AbstractMessage
    ) -> None:
        await self._exchanges[exchange].publish(
            message, routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT
        )

    async def _replace_closed_channel(self) -> None:
        async with self._reopening:
            if self.channel.is_closed:  # else another publish replaced it meanwhile
                log.warning("publisher channel closed for good; opening a new one")
                await self._open_channel()

    async def declare_work_queue(
        self,
        name: str,
        bindings: Sequence[tuple[str, str]],
        *,
        delivery_limit: int,
        retry_delays: Sequence[float],
        single_active: bool = False,
    ) -> None:
        """Declare a quorum work queue, its dead-letter queue and its retry queues
        (`single_active`: one consumer at a time receives)."""
        channel = self.channel
        dlq = await channel.declare_queue(
            dead_letter_queue(name), durable=True, arguments=dict(_QUORUM)
        )
        await dlq.bind(DEAD_LETTERS, routing_key=name)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                **_QUORUM,
                "x-dead-letter-exchange": DEAD_LETTERS,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": delivery_limit,
                **({"x-single-active-consumer": True} if single_active else {}),
            },
        )
        for exchange, key in bindings:
            await queue.bind(exchange, routing_key=key)
        for delay in set(retry_delays):
            # Expired messages dead-letter through the default exchange back into `name`.
            await channel.declare_queue(
                retry_queue(name, delay),
                durable=True,
                arguments={
                    **_QUORUM,
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": DEFAULT_EXCHANGE,
                    "x-dead-letter-routing-key": name,
                },
            )

    async def ready(self) -> None:
        """Wait until the connection is (back) up."""
        await self.channel.ready()

    async def close(self) -> None:
        """Close the connection; no reconnection follows."""
        await self.connection.close()


def republished(
    message: aio_pika.abc.AbstractIncomingMessage,
    headers: Mapping[str, Any],
    *,
    drop: Sequence[str] = (),
) -> aio_pika.Message:
    """A copy of a received message, persistent, with `headers` added and `drop` removed."""
    kept = {name: value for name, value in (message.headers or {}).items() if name not in drop}
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=message.timestamp,
        headers={**kept, **headers},
    )


async def amqp_broker(app: web.Application) -> AsyncIterator[None]:
    """Open the process's broker connection for the app's life."""
    settings = app[SETTINGS]
    broker = await Broker.connect(settings.amqp_url, name=settings.service_name)
    app[BROKER] = broker
    yield
    await broker.close()


async def broker_ready(app: web.Application) -> object:
    """Health check: the connection is open now."""
    broker = app[BROKER]
    if broker.connection.is_closed:
        raise ConnectionError("RabbitMQ connection is closed")
    return await asyncio.wait_for(broker.ready(), 1.0)
