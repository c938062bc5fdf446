"""Core's commands to the payments service: pay for an order, refund a payment, and the
reads and report around them. Each command is recorded with its outbox message in one
transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from chassis.data import Conn
from chassis.errors import Conflict, Forbidden, NotFound, Unprocessable
from chassis.http import Principal
from chassis.messaging import COMMANDS, RpcClient, enqueue
from contracts import CURRENCIES, ChargePayment, DailyReport, DailyReportRequest, RefundPayment
from services.core import idempotency
from services.core.audit.service import Actor, Origin, record
from services.core.checkout import repository
from services.core.idempotency import IdempotentRequest, fingerprint
from services.core.orders import repository as orders

log = logging.getLogger("relais.checkout")
UNPAID = frozenset({"pending_payment", "payment_failed"})


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
        if not await repository.email_verified(conn, principal.user_id):
            raise Forbidden(
                "Verify your e-mail address before paying: open the link mailed at registration "
                "(POST /api/auth/verify-email/resend mails it again)"
            )
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


async def order_payments(
    *, pool: asyncpg.Pool, principal: Principal, order_id: str
) -> dict[str, Any]:
    """The payments of an order its owner or an admin may see, oldest first."""
    owner = await repository.order_owner(pool, order_id)
    if owner is None or (str(owner) != principal.user_id and principal.role != "admin"):
        raise NotFound("No such order")
    rows = await repository.payments_of_order(pool, order_id)
    return {"items": [payment_json(row) for row in rows]}


async def get_refund(
    *, pool: asyncpg.Pool, principal: Principal, payment_id: str, refund_id: str
) -> dict[str, Any]:
    """A refund of a payment its payer or an admin may see."""
    _owned(await repository.payment_by_id(pool, payment_id), principal, "payment")
    refund = await repository.refund_of_payment(pool, payment_id, refund_id)
    if refund is None:
        raise NotFound("No such refund")
    return refund_json(refund)


async def start_refund(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    payment_id: str,
    amount_cents: int | None,
    key: str,
    retention_hours: int,
    actor: Actor,
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
        await actor.record(
            conn,
            "payment.refund_issued",
            subject=payment["id"],
            details={"refund_id": str(refund["id"]), "amount_cents": amount},
        )
        result = refund_json(refund)
        await idempotency.remember(conn, keyed, 202, result)
    return result, False


async def refund_automatically(conn: Conn, payment: asyncpg.Record) -> None:
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
    await record(
        conn,
        "payment.refund_issued",
        Origin.internal("core"),
        subject=payment["id"],
        details={
            "refund_id": str(refund["id"]),
            "amount_cents": refund["amount_cents"],
            "reason": "order_not_payable",
        },
    )
    await enqueue(
        conn,
        RefundPayment(
            refund_id=refund["id"], payment_id=payment["id"], amount_cents=refund["amount_cents"]
        ),
        exchange=COMMANDS,
        message_id=str(refund["id"]),
    )


async def daily_report(*, rpc: RpcClient, day: Any, deadline: float) -> dict[str, Any]:
    """One UTC day's ledger totals per currency, asked of the payments worker."""
    report = await rpc.call(
        DailyReportRequest.type_name(),
        DailyReportRequest(day=day),
        DailyReport,
        deadline=deadline,
    )
    return {"date": report.day, "currencies": [row.model_dump() for row in report.currencies]}
