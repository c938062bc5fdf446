"""The payments service's events, applied to the payment, its order and its refund: core's
reaction in the checkout saga. Each event is applied once (`processed_messages`) and
out-of-order events never move a payment backwards."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from pydantic import BaseModel

from chassis.data import Conn
from chassis.messaging import announce, first_delivery, message_type
from contracts import (
    OrderLine,
    OrderPaid,
    OrderPaymentFailed,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    RefundFailed,
    settlement_outcome,
)
from services.core.checkout import repository
from services.core.checkout.commands import UNPAID, refund_automatically
from services.core.metrics import CheckoutMetrics

log = logging.getLogger("relais.checkout")
CONSUMER = "core.payments"
SETTLED_CHANNEL = "core_payments"
# How far along a payment is; an event never moves it to a lower rank.
RANK = {"processing": 0, "failed": 1, "succeeded": 2, "partially_refunded": 3, "refunded": 4}
PaymentEvent = PaymentSucceeded | PaymentFailed | PaymentRefunded | RefundFailed


async def apply_event(
    *, pool: asyncpg.Pool, event: PaymentEvent, message_id: str, metrics: CheckoutMetrics
) -> None:
    """Apply a payments event to the payment, its order and its refund, once; a success for an
    order that is no longer payable (cancelled, or paid by another payment) is refunded."""
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, consumer=CONSUMER, message_id=message_id):
            return
        row = await repository.lock_payment_and_order(conn, getattr(event, "payment_id", None))
        if row is None:
            log.warning("%s names an unknown payment; ignored", message_type(event))
            return
        refund_reason = None
        if isinstance(event, PaymentRefunded | RefundFailed):
            refund_reason = await repository.refund_reason(conn, event.refund_id)
        change = _change_for(event, row, refund_reason)
        await repository.apply_change(conn, change, notify=SETTLED_CHANNEL)
        if change.order_status == "paid":
            await announce_paid(conn, row["order_id"])
        elif change.order_status == "payment_failed" and isinstance(event, PaymentFailed):
            await announce_failed(conn, event)
        if change.refund_unpayable:
            await refund_automatically(conn, row)
    if change.payment_status in ("succeeded", "failed"):
        metrics.payment_settled(
            settlement_outcome(change.payment_status, change.failure_code),
            amount_cents=row["amount_cents"],
            currency=row["currency"].strip(),
            created_at=row["created_at"],
        )
    if change.refund_unpayable:
        metrics.refunded_automatically(row["order_status"])


async def announce_paid(conn: Conn, order_id: object) -> None:
    """Announce what was bought together, in the transaction that marks the order paid."""
    order = await repository.paid_order(conn, order_id)
    paid = OrderPaid(
        order_id=order["id"],
        user_id=order["user_id"],
        items=[
            OrderLine(product_id=product, quantity=quantity)
            for product, quantity in zip(order["product_ids"], order["quantities"], strict=True)
        ],
        paid_at=order["updated_at"],
    )
    await announce(conn, paid, about=(paid.order_id,), to_user=paid.user_id)


async def announce_failed(conn: Conn, event: PaymentFailed) -> None:
    """Tell the buyer that their order's payment was refused, in the transaction that says so."""
    failed = OrderPaymentFailed(
        order_id=event.order_id,
        user_id=event.user_id,
        payment_id=event.payment_id,
        failure_code=event.failure_code,
        failed_at=datetime.now(UTC),
    )
    await announce(conn, failed, about=(failed.payment_id,), to_user=failed.user_id)


def _change_for(
    event: PaymentEvent, row: asyncpg.Record, refund_reason: str | None = None
) -> repository.Change:
    """What `event` changes, given the payment and its order as they are (never backwards)."""
    change = repository.Change(payment_id=row["id"], order_id=row["order_id"])
    CHANGES[type(event)](change, event, row, refund_reason)
    return change


def _succeeded(
    change: repository.Change, event: PaymentSucceeded, row: asyncpg.Record, _: str | None
) -> None:
    change.payment_status = _forward(row, "succeeded")
    if row["order_status"] in UNPAID:
        change.order_status = "paid"
    else:  # cancelled, or paid by another payment: this money must go back
        change.refund_unpayable = change.payment_status is not None


def _failed(
    change: repository.Change, event: PaymentFailed, row: asyncpg.Record, _: str | None
) -> None:
    change.payment_status = _forward(row, "failed")
    change.failure_code = event.failure_code
    if change.payment_status and row["order_status"] == "pending_payment":
        change.order_status = "payment_failed"


def _refunded(
    change: repository.Change,
    event: PaymentRefunded,
    row: asyncpg.Record,
    refund_reason: str | None,
) -> None:
    change.refund_id, change.refund_status = event.refund_id, "succeeded"
    change.payment_status = _forward(
        row, "refunded" if event.fully_refunded else "partially_refunded"
    )
    change.refunded_cents = max(row["refunded_cents"], event.refunded_cents)
    # An automatic refund returns money the order never took: the order stays as it is.
    paid_the_order = refund_reason != "order_not_payable"
    if event.fully_refunded and row["order_status"] != "refunded" and paid_the_order:
        change.order_status = "refunded"


def _refund_failed(
    change: repository.Change, event: RefundFailed, row: asyncpg.Record, _: str | None
) -> None:
    change.refund_id, change.refund_status = event.refund_id, "failed"
    change.failure_code = event.failure_code


# What each event changes.
CHANGES: dict[type[BaseModel], Callable[..., None]] = {
    PaymentSucceeded: _succeeded,
    PaymentFailed: _failed,
    PaymentRefunded: _refunded,
    RefundFailed: _refund_failed,
}


def _forward(payment: asyncpg.Record, status: str) -> str | None:
    """`status` if it moves the payment forward (a failure only from processing), else None."""
    current = payment["status"]
    if RANK[status] > RANK[current] and (status != "failed" or current == "processing"):
        return status
    return None
