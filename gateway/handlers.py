"""What the gateway takes from the broker: the events it pushes to their users.

Each comes twice, by two routes: once to `gateway.journal`, the instances' shared queue bound
by type, which keeps it for clients that reconnect (even when no instance holds its user); and
once to each instance's own queue holding its user's sockets (bound to `user.<id>`), which
pushes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel
from redis.exceptions import RedisError

from chassis.messaging import EVENTS, MessageTypes, UnknownContract, WorkQueue, occurred_at
from chassis.telemetry import Metrics
from contracts import (
    OrderCancelled,
    OrderPaid,
    OrderPaymentFailed,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from gateway.push.service import Arrival, Delivery, Hub, Push, push_of

log = logging.getLogger("relais.gateway")

# The events a user is told about, as they happen.
PUSHED: tuple[type[BaseModel], ...] = (
    OrderPaid,
    OrderPaymentFailed,
    OrderCancelled,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRefunded,
)
PUSHED_TYPES = MessageTypes(PUSHED)
JOURNAL = "gateway.journal"


async def _consumed_in_batches(
    app: web.Application, event: BaseModel, message: AbstractIncomingMessage
) -> None:
    # The journal's queue is bound by the types its table names; `journal` takes its messages.
    raise NotImplementedError("the journal is consumed in batches (`journal`), not per message")


def push_for(event: BaseModel, message: AbstractIncomingMessage) -> Push:
    """The push of a received event: its message id is the event's id."""
    if not message.message_id:
        raise UnknownContract("an event without a message id cannot be pushed once")
    return push_of(event, event_id=message.message_id, occurred_at=occurred_at(message))


Deliveries = list[Delivery]
# How long a batch the journal could not record waits before it is tried again (more after
# each failure).
JOURNAL_RETRY_DELAY = 1.0


def _arrivals(deliveries: Deliveries) -> tuple[list[Arrival], list[AbstractIncomingMessage]]:
    """The pushes of the deliveries that hold an event, and the deliveries that do not."""
    arrivals, bad = [], []
    for message, parent in deliveries:
        try:
            arrivals.append((push_for(PUSHED_TYPES.decode(message.body), message), parent))
        except UnknownContract as exc:
            log.error("not an event to push: %s %s: %s", message.type, message.message_id, exc)
            bad.append(message)
    return arrivals, bad


async def journal(hub: Hub, metrics: Metrics, deliveries: Deliveries) -> None:
    """Keep events for their users' reconnecting clients, in order: what is no event goes to the
    dead-letter queue, and a batch Redis refused is tried again (the queue waits meanwhile: a
    batch put back would come again behind later events)."""
    arrivals, bad = _arrivals(deliveries)
    for message in bad:
        metrics.dead_lettered(JOURNAL, "UnknownContract")
        await _settle(message.reject(requeue=False))
    for attempt in itertools.count(1):
        try:
            await hub.record(arrivals)
            break
        except (OSError, RedisError) as exc:
            log.warning("journaling %d events failed (attempt %d): %r", len(arrivals), attempt, exc)
            await asyncio.sleep(min(JOURNAL_RETRY_DELAY * attempt, 10.0))
    for message, _ in deliveries:
        if message not in bad:
            await _settle(message.ack())


async def push_live(hub: Hub, deliveries: Deliveries) -> None:
    """Push events from the instance's own queue to their users' sockets here (a push has no
    retry: a client that missed it catches up from the journal when it reconnects)."""
    arrivals, _ = _arrivals(deliveries)
    hub.push(arrivals)
    for message, _ in deliveries:
        await _settle(message.ack())


async def _settle(outcome: Awaitable[None]) -> None:
    # After a reconnect the broker has already put the delivery back: nothing to settle.
    try:
        await outcome
    except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
        log.warning("settling a delivery failed: %r", exc)


# The journal's queue, shared by the instances, one of which receives at a time (in order).
JOURNAL_QUEUE = WorkQueue(
    JOURNAL, EVENTS, dict.fromkeys(PUSHED, _consumed_in_batches), single_active=True
)
