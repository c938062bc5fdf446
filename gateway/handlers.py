"""What the gateway takes from the broker: the events it pushes to their users.

Each comes twice, by two routes: once to `gateway.journal`, the instances' shared queue bound
by type, which keeps it for clients that reconnect (even when no instance holds its user); and
once to each instance's own queue holding its user's sockets (bound to `user.<id>`), which
pushes it.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel

from chassis.messaging import EVENTS, MessageTypes, UnknownContract, WorkQueue, occurred_at
from contracts import (
    OrderCancelled,
    OrderPaid,
    OrderPaymentFailed,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from gateway.keys import HUB
from gateway.push.service import Hub, Push, push_of

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


def push_for(event: BaseModel, message: AbstractIncomingMessage) -> Push:
    """The push of a received event: its message id is the event's id."""
    if not message.message_id:
        raise UnknownContract("an event without a message id cannot be pushed once")
    return push_of(event, event_id=message.message_id, occurred_at=occurred_at(message))


async def journal(app: web.Application, event: BaseModel, message: AbstractIncomingMessage) -> None:
    """Keep an event for its user's reconnecting clients."""
    hub = app[HUB]
    push = push_for(event, message)
    if await hub.journal.record(push.user_id, push.id, push.text):
        hub.metrics.journaled.inc()


JOURNAL_QUEUE = WorkQueue("gateway.journal", EVENTS, dict.fromkeys(PUSHED, journal))


async def push_live(hub: Hub, message: AbstractIncomingMessage) -> None:
    """Push an event from the instance's own queue to its user's sockets here (a push has no
    retry: a client that missed it catches up from the journal when it reconnects)."""
    try:
        await hub.deliver(push_for(PUSHED_TYPES.decode(message.body), message))
    except UnknownContract as exc:
        log.error("not pushed: %s %s: %s", message.type, message.message_id, exc)
