"""What core announces of an order (exchange `relais.events`, routing key = type, and a copy to
the buyer, `user.<user_id>`, which the realtime gateway pushes to their sockets)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from contracts._base import Contract


class OrderLine(BaseModel):
    """One product of an order, and how many."""

    product_id: UUID
    quantity: int


class OrderPaid(Contract):
    """An order's payment succeeded: what was bought together."""

    type: Literal["order.paid"] = "order.paid"
    version: Literal[1] = 1
    order_id: UUID
    user_id: UUID
    items: list[OrderLine]
    paid_at: datetime


class OrderPaymentFailed(Contract):
    """An order's payment was refused; the order waits for another payment until its hold ends."""

    type: Literal["order.payment_failed"] = "order.payment_failed"
    version: Literal[1] = 1
    order_id: UUID
    user_id: UUID
    payment_id: UUID
    failure_code: str
    failed_at: datetime


class OrderCancelled(Contract):
    """An order was cancelled and its stock returned: by its buyer, or unpaid past its hold."""

    type: Literal["order.cancelled"] = "order.cancelled"
    version: Literal[1] = 1
    order_id: UUID
    user_id: UUID
    reason: Literal["buyer", "unpaid"]
    cancelled_at: datetime
