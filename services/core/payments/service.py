"""Paying for orders and refunding them: core's half of the checkout saga.

Core records what it asked for and tells the payments worker through the outbox; the worker's
events come back through `apply_event`, which moves the order along (paid, payment_failed,
refunded). Each event is applied once (`processed_messages`) and out-of-order events never move a
payment backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson

from chassis.amqp import COMMANDS
from chassis.auth import Principal
from chassis.contracts import (
    ChargePayment,
    Contract,
    DailyReport,
    DailyReportRequest,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    ProviderEvent,
    RefundFailed,
    RefundPayment,
)
from chassis.money import CURRENCIES
from chassis.outbox import derived_message_id, enqueue, first_delivery
from chassis.payloads import nul_fields
from chassis.problems import BadRequest, Conflict, NotFound, Unprocessable
from chassis.resources import Conn
from chassis.rpc import RpcClient
from services.core import idempotency
from services.core.idempotency import IdempotentRequest, fingerprint
from services.core.metrics import CheckoutMetrics
from services.core.orders import repository as orders
from services.core.payments import repository

log = logging.getLogger("relais.payments")
CONSUMER = "core.payments"
SETTLED_CHANNEL = "core_payments"
# How far along a payment is; an event never moves it to a lower rank.
RANK = {"processing": 0, "failed": 1, "succeeded": 2, "partially_refunded": 3, "refunded": 4}
UNPAID = frozenset({"pending_payment", "payment_failed"})
WEBHOOK_PROVIDERS = frozenset({"stripe", "sandbox"})


def payment_json(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """The public view of a payment."""
    return {
        key: row[key]
        for key in (
            "id",
            "order_id",
            "status",
            "amount_cents",
            "refunded_cents",
            "currency",
            "failure_code",
            "created_at",
            "updated_at",
        )
    }


def refund_json(row: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    """The public view of a refund."""
    return dict(row)


def _owned(row: asyncpg.Record | None, principal: Principal, what: str) -> asyncpg.Record:
    if row is None or (str(row["user_id"]) != principal.user_id and principal.role != "admin"):
        raise NotFound(f"No such {what}")
    return row


async def start_payment(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    order_id: str,
    payment_method: str,
    key: str,
    retention_hours: int,
    payment_id: uuid.UUID | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a payment (with `payment_id` if given) and command the charge, or replay the key's
    first answer: (payment, replayed)."""
    keyed = IdempotentRequest(principal.user_id, key, fingerprint("pay", order_id, payment_method))
    async with pool.acquire() as conn, conn.transaction():
        replay = await idempotency.claim(conn, keyed, retention_hours=retention_hours)
        if replay is not None:
            return replay.body, True
        order = await orders.order_for_update(conn, order_id)
        if order is None or str(order["user_id"]) != principal.user_id:
            raise NotFound("No such order")
        if order["status"] not in UNPAID:
            raise Conflict(f"An order that is {order['status']} cannot be paid")
        if order["currency"] not in CURRENCIES:  # an order placed before the allow-list
            raise Unprocessable(
                f"Payments in {order['currency']} are not accepted",
                extra={"errors": [{"field": "currency", "message": "not an accepted currency"}]},
            )
        try:
            payment = await repository.insert_payment(
                conn, order=order, payment_method=payment_method, payment_id=payment_id
            )
        except asyncpg.UniqueViolationError as exc:  # payments_one_live_per_order
            raise Conflict("This order already has a payment in progress or completed") from exc
        if order["status"] != "pending_payment":
            await orders.set_status(conn, order["id"], "pending_payment")
        await enqueue(
            conn,
            ChargePayment(
                payment_id=payment["id"],
                order_id=order["id"],
                user_id=order["user_id"],
                amount_cents=payment["amount_cents"],
                currency=payment["currency"],
                payment_method=payment_method,
            ),
            exchange=COMMANDS,
            message_id=str(payment["id"]),
        )
        result = payment_json(payment)
        await idempotency.remember(conn, keyed, 202, result)
    return result, False


async def get_payment(
    *, pool: asyncpg.Pool, principal: Principal, payment_id: str
) -> dict[str, Any]:
    """A payment its payer or an admin may see."""
    row = _owned(await repository.payment_by_id(pool, payment_id), principal, "payment")
    return payment_json(row)


async def start_refund(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    payment_id: str,
    amount_cents: int | None,
    key: str,
    retention_hours: int,
) -> tuple[dict[str, Any], bool]:
    """Record a refund and command it, or replay the key's first answer: (refund, replayed)."""
    keyed = IdempotentRequest(
        principal.user_id, key, fingerprint("refund", payment_id, amount_cents)
    )
    async with pool.acquire() as conn, conn.transaction():
        replay = await idempotency.claim(conn, keyed, retention_hours=retention_hours)
        if replay is not None:
            return replay.body, True
        payment = await repository.payment_for_update(conn, payment_id)
        if payment is None:
            raise NotFound("No such payment")
        if payment["status"] not in ("succeeded", "partially_refunded", "refunded"):
            raise Conflict(f"A payment that is {payment['status']} cannot be refunded")
        remaining = payment["amount_cents"] - await repository.committed_refunds_cents(
            conn, payment["id"]
        )
        amount = remaining if amount_cents is None else amount_cents
        if amount <= 0 or amount > remaining:
            raise Unprocessable(
                f"Only {remaining} cents of this payment remain refundable",
                extra={"errors": [{"field": "amount_cents", "message": f"at most {remaining}"}]},
            )
        refund = await repository.insert_refund(conn, payment_id=payment["id"], amount_cents=amount)
        await enqueue(
            conn,
            RefundPayment(refund_id=refund["id"], payment_id=payment["id"], amount_cents=amount),
            exchange=COMMANDS,
            message_id=str(refund["id"]),
        )
        result = refund_json(refund)
        await idempotency.remember(conn, keyed, 202, result)
    return result, False


async def apply_event(
    *, pool: asyncpg.Pool, event: Contract, message_id: str, metrics: CheckoutMetrics
) -> None:
    """Apply a payments event to the payment, its order and its refund, once; a success for an
    order that is no longer payable (cancelled, or paid by another payment) is refunded."""
    async with pool.acquire() as conn, conn.transaction():
        if not await first_delivery(conn, consumer=CONSUMER, message_id=message_id):
            return
        row = await repository.lock_payment_and_order(conn, getattr(event, "payment_id", None))
        if row is None:
            log.warning("%s names an unknown payment; ignored", event.type)
            return
        refund_reason = None
        if isinstance(event, PaymentRefunded | RefundFailed):
            refund_reason = await repository.refund_reason(conn, event.refund_id)
        change = _change_for(event, row, refund_reason)
        await repository.apply_change(conn, change, notify=SETTLED_CHANNEL)
        if change.refund_unpayable:
            await _refund_automatically(conn, row)
    if change.payment_status in ("succeeded", "failed"):
        metrics.payment_settled(
            change.payment_status,
            amount_cents=row["amount_cents"],
            currency=row["currency"].strip(),
            created_at=row["created_at"],
        )
    if change.refund_unpayable:
        metrics.refunded_automatically(row["order_status"])


async def _refund_automatically(conn: Conn, payment: asyncpg.Record) -> None:
    """Refund all of a payment that succeeded for an order no longer payable, in the
    transaction that recorded the success."""
    log.error(
        "payment %s succeeded for an order that is %s: refunding it",
        payment["id"],
        payment["order_status"],
    )
    refund = await repository.insert_refund(
        conn,
        payment_id=payment["id"],
        amount_cents=payment["amount_cents"],
        reason="order_not_payable",
    )
    await enqueue(
        conn,
        RefundPayment(
            refund_id=refund["id"], payment_id=payment["id"], amount_cents=refund["amount_cents"]
        ),
        exchange=COMMANDS,
        message_id=str(refund["id"]),
    )


def _change_for(
    event: Contract, row: asyncpg.Record, refund_reason: str | None = None
) -> repository.Change:
    """What `event` changes, given the payment and its order as they are (never backwards)."""
    change = repository.Change(payment_id=row["id"], order_id=row["order_id"])
    order_status = row["order_status"]
    if isinstance(event, PaymentSucceeded):
        change.payment_status = _forward(row, "succeeded")
        if order_status in UNPAID:
            change.order_status = "paid"
        else:  # cancelled, or paid by another payment: this money must go back
            change.refund_unpayable = change.payment_status is not None
    elif isinstance(event, PaymentFailed):
        change.payment_status = _forward(row, "failed")
        change.failure_code = event.failure_code
        if change.payment_status and order_status == "pending_payment":
            change.order_status = "payment_failed"
    elif isinstance(event, PaymentRefunded):
        change.refund_id, change.refund_status = event.refund_id, "succeeded"
        change.payment_status = _forward(
            row, "refunded" if event.fully_refunded else "partially_refunded"
        )
        change.refunded_cents = max(row["refunded_cents"], event.refunded_cents)
        # An automatic refund returns money the order never took: the order stays as it is.
        paid_the_order = refund_reason != "order_not_payable"
        if event.fully_refunded and order_status != "refunded" and paid_the_order:
            change.order_status = "refunded"
    elif isinstance(event, RefundFailed):
        change.refund_id, change.refund_status = event.refund_id, "failed"
        change.failure_code = event.failure_code
    return change


def _forward(payment: asyncpg.Record, status: str) -> str | None:
    """`status` if it moves the payment forward (a failure only from processing), else None."""
    current = payment["status"]
    if RANK[status] > RANK[current] and (status != "failed" or current == "processing"):
        return status
    return None


class SettlementWaiters:
    """Requests waiting (`Prefer: wait`) for a payment to settle, woken by NOTIFY."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def notify(self, payment_id: str) -> None:
        """A payment changed (an empty id: anything may have; wake everyone)."""
        ids = list(self._waiting) if not payment_id else [payment_id]
        for key in ids:
            for future in self._waiting.pop(key, ()):
                if not future.done():
                    future.set_result(None)

    def watch(self, payment_id: str) -> asyncio.Future[None]:
        """A future woken at the payment's next change (watch before the change can commit)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[payment_id].add(future)
        return future

    def forget(self, payment_id: str, future: asyncio.Future[None]) -> None:
        """Stop watching."""
        waiting = self._waiting.get(payment_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiting[payment_id]

    async def settled(
        self,
        *,
        pool: asyncpg.Pool,
        payment_id: str,
        seconds: float,
        watching: asyncio.Future[None] | None = None,
    ) -> dict[str, Any]:
        """The payment once it is no longer processing, or as it is after `seconds`.

        `watching` is a future from `watch()` taken before the payment was created: it is still
        processing, so the first read is skipped.
        """
        deadline = time.monotonic() + seconds
        future = watching
        try:
            while True:
                if future is None:  # watch, then read: a change after the read wakes us
                    future = self.watch(payment_id)
                    row = await repository.payment_by_id(pool, payment_id)
                    if row is None:
                        raise NotFound("No such payment")
                    if row["status"] != "processing" or time.monotonic() >= deadline:
                        return payment_json(row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, max(deadline - time.monotonic(), 0))
                self.forget(payment_id, future)
                future = None
        finally:
            if future is not None:
                self.forget(payment_id, future)


_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def verify_signature(
    payload: bytes, header: str | None, *, secret: str, tolerance: int, now: float | None = None
) -> None:
    """Check a Stripe-style `t=…,v1=…` signature over `"{t}.{payload}"`; 400 if it fails."""
    if not header:
        raise BadRequest("Missing Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):  # ASCII digits only, unlike isdigit()
            timestamp = int(value)
        elif name == "v1" and _SIGNATURE.fullmatch(value):  # what an HMAC-SHA256 looks like
            signatures.append(value.encode())
    if timestamp is None or not signatures:
        raise BadRequest("Malformed Stripe-Signature header")
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        raise BadRequest("Webhook timestamp is outside the tolerance")
    signed = str(timestamp).encode() + b"." + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise BadRequest("Webhook signature does not match")


def provider_event(provider: str, payload: bytes) -> ProviderEvent:
    """The contract a verified webhook body describes (Stripe's event format: a PaymentIntent,
    a Charge or a Refund as `data.object`); 400 if it is not an event."""
    try:
        event = orjson.loads(payload)
        obj = event["data"]["object"]
        event_id, event_type = event["id"], event["type"]
        if not (
            isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)
        ):
            raise TypeError("id, type and data.object have the wrong types")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadRequest(f"Not a provider event: {exc}") from exc
    if any(nul_fields(event)):
        raise BadRequest("Not a provider event: it holds NUL characters")
    metadata, error = (_mapping(obj.get(name)) for name in ("metadata", "last_payment_error"))
    kind = obj.get("object")
    # A PaymentIntent is the payment; a Charge or a Refund names its PaymentIntent.
    intent = obj.get("id") if kind == "payment_intent" else obj.get("payment_intent")
    currency = _text(obj.get("currency"))
    return ProviderEvent(
        provider=provider,
        event_id=event_id[:255],
        event_type=event_type[:100],
        payment_id=_uuid(metadata.get("payment_id")),
        provider_payment_id=_text(intent),
        failure_code=_text(error.get("decline_code") or error.get("code")),
        refund_id=_uuid(metadata.get("refund_id")) if kind == "refund" else None,
        provider_refund_id=_text(obj.get("id")) if kind == "refund" else None,
        amount_cents=_amount(obj.get("amount")),
        currency=currency.upper() if currency else None,
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value[:255] if isinstance(value, str) else None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _amount(value: object) -> int | None:
    # bool is an int to Python, not to JSON
    return value if type(value) is int and 0 < value <= 2**62 else None


async def accept_webhook(*, pool: asyncpg.Pool, event: ProviderEvent) -> bool:
    """Forward a verified provider event to the worker once; whether it was new."""
    async with pool.acquire() as conn, conn.transaction():
        new = await repository.record_webhook(
            conn, provider=event.provider, event_id=event.event_id, event_type=event.event_type
        )
        if new:
            await enqueue(
                conn,
                event,
                exchange=COMMANDS,
                message_id=derived_message_id("webhook", event.provider, event.event_id),
            )
    return new


async def daily_report(*, rpc: RpcClient, day: Any, deadline: float) -> dict[str, Any]:
    """One UTC day's ledger totals per currency, asked of the payments worker."""
    report = await rpc.call(
        DailyReportRequest.type_name(),
        DailyReportRequest(day=day),
        DailyReport,
        deadline=deadline,
    )
    return {"date": report.day, "currencies": [row.model_dump() for row in report.currencies]}
