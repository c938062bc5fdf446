"""What core does with each message it accepts: a table from contract to function. `app.py`
wires the table to core's event queue; the functions live in the domains."""

from __future__ import annotations

from collections.abc import Mapping

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel

from chassis.data import DB_POOL
from chassis.messaging import AppMessageHandler
from contracts import PaymentFailed, PaymentRefunded, PaymentSucceeded, RefundFailed
from services.core.checkout import events
from services.core.keys import CHECKOUT_METRICS


async def payment_event(
    app: web.Application, event: events.PaymentEvent, message: AbstractIncomingMessage
) -> None:
    """Move the payment, its order and its refund along, once."""
    await events.apply_event(
        pool=app[DB_POOL],
        event=event,
        message_id=message.message_id or "",
        metrics=app[CHECKOUT_METRICS],
    )


# The payments service's events, on core's event queue.
EVENTS: Mapping[type[BaseModel], AppMessageHandler] = {
    PaymentSucceeded: payment_event,
    PaymentFailed: payment_event,
    PaymentRefunded: payment_event,
    RefundFailed: payment_event,
}
