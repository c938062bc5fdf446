"""The consumer base: decode, handle, ack after the effect; retry, dead-letter, stop gracefully.

A handler receives the decoded contract and the message. It commits its effect (and records the
message as processed in the same transaction, see `chassis.outbox.first_delivery`) before it
returns; the ack follows. Its failures are sorted:

- `UnknownContract` or `Poison`: the message can never succeed; it goes to the dead-letter queue
  at once, with the reason in a header.
- anything else: the message waits in the next retry queue (back-off), and goes to the
  dead-letter queue with the last error once the retries are spent.

A message that crashes the process is redelivered by the broker until the queue's delivery
limit, after which the broker itself dead-letters it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aiohttp import web
from pydantic import BaseModel

from chassis.messaging._amqp import (
    ATTEMPT_HEADER,
    BROKER,
    DEAD_AT_HEADER,
    DEAD_LETTERS,
    DEFAULT_EXCHANGE,
    QUEUE_HEADER,
    REASON_HEADER,
    Broker,
    republished,
    retry_queue,
)
from chassis.messaging._envelope import MessageTypes, UnknownContract, type_name
from chassis.settings import SETTINGS, ServiceSettings
from chassis.telemetry import METRICS, Metrics

log = logging.getLogger("relais.consumer")

# A handler takes the decoded message (the model its table names) and the delivery.
MessageHandler = Callable[[Any, AbstractIncomingMessage], Awaitable[None]]
# A service's handler also takes its app (a `handlers.py` table entry).
AppMessageHandler = Callable[[web.Application, Any, AbstractIncomingMessage], Awaitable[None]]
Handlers = Mapping[type[BaseModel], MessageHandler]


# Why a consumer dead-letters a message: the `reason` label of
# `relais_messages_dead_lettered_total` (each created at 0 when the queue is consumed).
DEAD_LETTER_REASONS = ("UnknownContract", "Poison", "retries exhausted")


class Poison(Exception):
    """A message that no retry can make succeed."""


def attempt_of(message: AbstractIncomingMessage) -> int:
    """How many retries this message has had."""
    value = (message.headers or {}).get(ATTEMPT_HEADER, 0)
    return value if isinstance(value, int) else 0


class Consumer:
    """Consumes one work queue with manual acks, `prefetch` messages in flight."""

    def __init__(
        self,
        broker: Broker,
        queue: str,
        handlers: Handlers,
        *,
        metrics: Metrics,
        prefetch: int,
        retry_delays: Sequence[float],
    ) -> None:
        self.broker = broker
        self.queue_name = queue
        self.handlers = dict(handlers)
        self.types = MessageTypes(handlers)
        self.metrics = metrics
        self.prefetch = prefetch
        self.retry_delays = list(retry_delays)
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open a channel of its own and start consuming."""
        channel = await self.broker.connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        self._channel = channel
        # A passive declare registers the queue with the robust channel, which consumes it again
        # after a reconnect; a queue object made without one would be forgotten.
        self._queue = await channel.get_queue(self.queue_name, ensure=True)
        self.metrics.declare_queue(self.queue_name, DEAD_LETTER_REASONS)
        self._tag = await self._queue.consume(self._on_message)
        self.metrics.consumers.labels(self.metrics.service, self.queue_name).inc()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages, let those in flight finish, then close the channel."""
        if self._tag is not None:
            self.metrics.consumers.labels(self.metrics.service, self.queue_name).dec()
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # a lost connection has cancelled it already
                log.warning("cancelling consumer of %s failed: %r", self.queue_name, exc)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace)
        if self._channel is not None:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        queue, kind = self.queue_name, message.type or "unknown"
        started = time.perf_counter()
        self.metrics.consumed(queue, kind, redelivered=bool(message.redelivered))
        try:
            contract = self.types.decode(message.body)
            await self.handlers[type(contract)](contract, message)
        except (UnknownContract, Poison) as exc:
            self.metrics.message_failed(queue, kind)
            kind = "Poison" if isinstance(exc, Poison) else "UnknownContract"
            await self._dead_letter(message, kind, str(exc))
        except Exception as exc:
            self.metrics.message_failed(queue, kind)
            await self._retry_or_dead_letter(message, exc)
        else:
            await _settle(message.ack())
        self.metrics.handled(queue, kind, time.perf_counter() - started)

    async def _retry_or_dead_letter(self, message: AbstractIncomingMessage, exc: Exception) -> None:
        attempt = attempt_of(message) + 1
        if attempt > len(self.retry_delays):
            await self._dead_letter(message, "retries exhausted", repr(exc))
            return
        log.warning(
            "handling %s %s failed (%r); retry %d in %.1fs",
            message.type,
            message.message_id,
            exc,
            attempt,
            self.retry_delays[attempt - 1],
        )
        await self._forward(
            message,
            DEFAULT_EXCHANGE,
            retry_queue(self.queue_name, self.retry_delays[attempt - 1]),
            {ATTEMPT_HEADER: attempt},
        )

    async def _dead_letter(self, message: AbstractIncomingMessage, kind: str, error: str) -> None:
        reason = f"{kind}: {error}"
        log.error("dead-lettering %s %s: %s", message.type, message.message_id, reason)
        self.metrics.dead_lettered(self.queue_name, kind)
        await self._forward(
            message,
            DEAD_LETTERS,
            self.queue_name,
            {
                REASON_HEADER: reason[:1000],
                QUEUE_HEADER: self.queue_name,
                DEAD_AT_HEADER: int(time.time()),
            },
        )

    async def _forward(
        self,
        message: AbstractIncomingMessage,
        exchange: str,
        routing_key: str,
        headers: dict[str, str | int],
    ) -> None:
        """Publish a copy (confirmed), then ack the original; if the copy fails, requeue."""
        try:
            await self.broker.publish(exchange, routing_key, republished(message, headers))
        except Exception as exc:
            log.warning("forwarding %s failed (%r); requeued", message.message_id, exc)
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())


@dataclasses.dataclass(frozen=True)
class WorkQueue:
    """A queue a service consumes: bound to `exchange` for the types `handlers` names."""

    name: str
    exchange: str
    handlers: Mapping[type[BaseModel], AppMessageHandler]
    # One consumer at a time receives (the others wait their turn): messages handled in order.
    single_active: bool = False

    async def declare(self, broker: Broker, settings: ServiceSettings) -> None:
        """Declare the queue, its bindings, its retry and dead-letter queues (idempotent)."""
        await broker.declare_work_queue(
            self.name,
            [(self.exchange, name) for name in sorted({type_name(m) for m in self.handlers})],
            delivery_limit=settings.amqp_delivery_limit,
            retry_delays=settings.amqp_retry_delays,
            single_active=self.single_active,
        )


async def declare_work_queues(settings: ServiceSettings, queues: Sequence[WorkQueue]) -> None:
    """Declare a service's queues before it first runs (`python -m services.<name> declare`):
    what is published for it meanwhile waits there instead of being unroutable."""
    broker = await Broker.connect(settings.amqp_url, name=f"{settings.service_name}-declare")
    try:
        for queue in queues:
            await queue.declare(broker, settings)
    finally:
        await broker.close()


async def consume_work_queue(
    app: web.Application,
    queue: str,
    *,
    exchange: str,
    handlers: Mapping[type[BaseModel], AppMessageHandler],
) -> Consumer:
    """Declare `queue` bound to `exchange` for the types `handlers` names (with its retry and
    dead-letter queues), and start consuming it with the service's settings, each message
    handed to its type's handler with the app."""
    settings, broker = app[SETTINGS], app[BROKER]
    await WorkQueue(queue, exchange, handlers).declare(broker, settings)
    consumer = Consumer(
        broker,
        queue,
        {model: functools.partial(handler, app) for model, handler in handlers.items()},
        metrics=app[METRICS],
        prefetch=settings.amqp_prefetch,
        retry_delays=settings.amqp_retry_delays,
    )
    await consumer.start()
    return consumer


async def _settle(outcome: Awaitable[None]) -> None:
    # A lost channel has already returned the message to the queue: nothing left to settle.
    try:
        await outcome
    except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
        log.warning("settling a message failed: %r", exc)
