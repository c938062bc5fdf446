"""The payments worker's logic: charge, refund, settle from webhooks, report from the ledger.

Every effect commits with the message's id in `processed_messages` and the event announcing it
in the outbox. A provider call sits between two transactions and carries our key (the payment's
or the refund's id), so a message redelivered after a crash asks the provider again and gets
the first answer back: the provider moves money once.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from chassis.data import Conn
from chassis.messaging import announce, first_delivery
from contracts import (
    ChargePayment,
    Contract,
    CurrencyTotals,
    DailyReport,
    DailyReportRequest,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    ProviderEvent,
    RefundFailed,
    RefundPayment,
)
from services.payments import repository
from services.payments.providers import Charge, Outcome, Provider, Refund, Status

log = logging.getLogger("relais.payments")
CONSUMER = "payments"
# Webhook event types and the outcome they announce.
PROVIDER_OUTCOMES: dict[str, Status] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
}
# Webhook event types that say something happened to a refund.
REFUND_EVENTS = frozenset(
    {
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    }
)


class UnknownPayment(LookupError):
    """A message about a payment this worker has not recorded (yet): retried, then dead."""


async def charge(
    *, pool: asyncpg.Pool, provider: Provider, command: ChargePayment, message_id: str
) -> None:
    """Charge the payment once at the provider and record the outcome."""
    async with pool.acquire() as conn:
        payment = await repository.ensure_payment(conn, command, provider.name)
    if payment["status"] != "processing":
        return  # settled by an earlier delivery or a webhook; its event went out then
    outcome = await provider.charge(
        Charge(
            key=str(command.payment_id),
            amount_cents=command.amount_cents,
            currency=command.currency,
            payment_method=command.payment_method,
            metadata={"payment_id": str(command.payment_id), "order_id": str(command.order_id)},
        )
    )
    async with pool.acquire() as conn, conn.transaction():
        if await first_delivery(conn, consumer=CONSUMER, message_id=message_id):
            await settle_charge(conn, command.payment_id, outcome)


async def settle_charge(conn: Conn, payment_id: Any, outcome: Outcome) -> None:
    """Apply a charge's outcome: a success posts to the ledger; a late failure changes nothing."""
    payment = await repository.payment_for_update(conn, payment_id=payment_id)
    if payment is None:
        raise UnknownPayment(f"no payment {payment_id}")
    status = payment["status"]
    if outcome.status == "succeeded" and status in ("processing", "failed"):
        payment = await repository.update_payment(
            conn, payment["id"], status="succeeded", provider_ref=outcome.provider_ref
        )
        amount = payment["amount_cents"]
        await repository.post_transaction(
            conn,
            kind="charge",
            reference=f"charge:{payment['id']}",
            payment_id=payment["id"],
            currency=payment["currency"],
            entries=[(repository.RECEIVABLE, amount), (repository.SALES, -amount)],
        )
        await _announce(
            conn,
            PaymentSucceeded(
                payment_id=payment["id"],
                order_id=payment["order_id"],
                user_id=payment["user_id"],
                amount_cents=amount,
                currency=payment["currency"],
            ),
            subject=payment["id"],
        )
    elif outcome.status == "failed" and status == "processing":
        code = outcome.failure_code or "payment_failed"
        payment = await repository.update_payment(
            conn,
            payment["id"],
            status="failed",
            provider_ref=outcome.provider_ref,
            failure_code=code,
        )
        await _announce(
            conn,
            PaymentFailed(
                payment_id=payment["id"],
                order_id=payment["order_id"],
                user_id=payment["user_id"],
                failure_code=code,
            ),
            subject=payment["id"],
        )
    elif outcome.status == "processing" and outcome.provider_ref:
        await repository.update_payment(
            conn, payment["id"], status=status, provider_ref=outcome.provider_ref
        )
    else:
        log.info("payment %s is %s; %s outcome ignored", payment["id"], status, outcome.status)


async def refund(
    *, pool: asyncpg.Pool, provider: Provider, command: RefundPayment, message_id: str
) -> None:
    """Refund at the provider once and post the reversing entries."""
    async with pool.acquire() as conn, conn.transaction():
        payment = await repository.payment_for_update(conn, payment_id=command.payment_id)
        if payment is None:
            raise UnknownPayment(f"no payment {command.payment_id}")
        row = await repository.ensure_refund(conn, command)
        if row["status"] != "pending":
            return
        others = await repository.pending_refunds_cents(conn, payment["id"], besides=row["id"])
        remaining = payment["amount_cents"] - payment["refunded_cents"] - others
        refusal = None
        if payment["status"] not in ("succeeded", "partially_refunded"):
            refusal = f"payment_{payment['status']}"
        elif command.amount_cents > remaining:
            refusal = "amount_exceeds_remaining"
        if refusal is not None:
            if await first_delivery(conn, consumer=CONSUMER, message_id=message_id):
                await settle_refund(conn, command.refund_id, Outcome("failed", None, refusal))
            return
        provider_ref = payment["provider_ref"] or ""
    outcome = await provider.refund(
        Refund(
            key=str(command.refund_id),
            provider_ref=provider_ref,
            amount_cents=command.amount_cents,
            metadata={"refund_id": str(command.refund_id), "payment_id": str(command.payment_id)},
        )
    )
    async with pool.acquire() as conn, conn.transaction():
        if await first_delivery(conn, consumer=CONSUMER, message_id=message_id):
            await settle_refund(conn, command.refund_id, outcome)


async def settle_refund(conn: Conn, refund_id: Any, outcome: Outcome) -> None:
    """Apply a refund's outcome: reversing entries and `payment.refunded`, or `refund_failed`."""
    row = await repository.refund_for_update(conn, refund_id)
    if row is None or row["status"] != "pending":
        return
    if outcome.status == "processing":  # pending at the provider: a webhook or the reconciler
        if outcome.provider_ref:
            await repository.record_refund_ref(conn, refund_id, outcome.provider_ref)
        return
    payment = await repository.payment_for_update(conn, payment_id=row["payment_id"])
    if payment is None:
        raise UnknownPayment(f"no payment {row['payment_id']}")
    await repository.settle_refund_row(
        conn,
        refund_id,
        status=outcome.status,
        provider_ref=outcome.provider_ref,
        failure_code=outcome.failure_code,
    )
    if outcome.status == "failed":
        await _announce(
            conn,
            RefundFailed(
                payment_id=payment["id"],
                refund_id=refund_id,
                failure_code=outcome.failure_code or "refund_failed",
            ),
            subject=refund_id,
        )
        return
    amount = row["amount_cents"]
    refunded = payment["refunded_cents"] + amount
    full = refunded == payment["amount_cents"]
    await repository.update_payment(
        conn,
        payment["id"],
        status="refunded" if full else "partially_refunded",
        refunded_cents=refunded,
    )
    await repository.post_transaction(
        conn,
        kind="refund",
        reference=f"refund:{refund_id}",
        payment_id=payment["id"],
        currency=payment["currency"],
        entries=[(repository.RECEIVABLE, -amount), (repository.SALES, amount)],
    )
    await _announce(
        conn,
        PaymentRefunded(
            payment_id=payment["id"],
            order_id=payment["order_id"],
            user_id=payment["user_id"],
            refund_id=refund_id,
            amount_cents=amount,
            refunded_cents=refunded,
            fully_refunded=full,
        ),
        subject=refund_id,
    )


async def provider_event(
    *, pool: asyncpg.Pool, provider: Provider, event: ProviderEvent, message_id: str
) -> None:
    """Act on a verified webhook once. A webhook is a claim, not proof: a success is applied only
    when its provider, amount and currency match the payment, and one for a payment recorded as
    failed only once the provider confirms it; a refund event makes the worker ask the provider
    about the payment's pending refunds."""
    if event.event_type in PROVIDER_OUTCOMES:
        await _payment_event(pool=pool, provider=provider, event=event)
    elif event.event_type in REFUND_EVENTS:
        payment = await _payment_of(pool, event)
        await reconcile_refunds(
            pool=pool, provider=provider, older_than=0, payment_id=payment["id"]
        )
    else:
        log.info("webhook %s of type %s ignored", event.event_id, event.event_type)
    async with pool.acquire() as conn:
        await first_delivery(conn, consumer=CONSUMER, message_id=message_id)


async def _payment_of(pool: asyncpg.Pool, event: ProviderEvent) -> asyncpg.Record:
    payment = await repository.find_payment(
        pool, payment_id=event.payment_id, provider_ref=event.provider_payment_id
    )
    if payment is None:
        raise UnknownPayment(f"webhook {event.event_id} names an unknown payment")
    return payment


async def _payment_event(*, pool: asyncpg.Pool, provider: Provider, event: ProviderEvent) -> None:
    payment = await _payment_of(pool, event)
    status = PROVIDER_OUTCOMES[event.event_type]
    outcome = Outcome(
        status, event.provider_payment_id, event.failure_code, event.amount_cents, event.currency
    )
    doubt = _doubt(payment, outcome, event.provider)
    if doubt is None and status == "succeeded" and payment["status"] == "failed":
        # Money we recorded as not moved: only the provider's own word moves it.
        confirmed = await provider.find_charge(str(payment["id"]), payment["provider_ref"])
        doubt = "the provider does not confirm it" if confirmed is None else None
        if confirmed is not None:
            outcome = confirmed
            doubt = _doubt(payment, confirmed, provider.name)
    if doubt is not None:
        log.warning(
            "webhook %s (%s) for payment %s ignored: %s",
            event.event_id,
            event.event_type,
            payment["id"],
            doubt,
        )
        return
    async with pool.acquire() as conn, conn.transaction():
        await settle_charge(conn, payment["id"], outcome)


def _doubt(payment: asyncpg.Record, outcome: Outcome, provider: str) -> str | None:
    """Why `outcome` cannot be believed of `payment` (None: it can)."""
    if provider != payment["provider"]:
        return f"it comes from {provider}, the payment went to {payment['provider']}"
    if outcome.status != "succeeded":
        return None
    held = (outcome.amount_cents, outcome.currency)
    if held != (payment["amount_cents"], payment["currency"]):
        return f"it is for {held}, the payment is {payment['amount_cents']} {payment['currency']}"
    return None


async def reconcile(
    *, pool: asyncpg.Pool, provider: Provider, older_than: float, give_up_after: float
) -> int:
    """Settle payments and refunds left in flight for `older_than` seconds by asking the
    provider what became of them (an answer that never came, a buyer who never confirmed, a
    refund still pending); a charge still waiting after `give_up_after` is cancelled. How many
    were settled."""
    settled = 0
    for payment in await repository.payments_in_flight(pool, older_than=older_than, limit=100):
        key, ref = str(payment["id"]), payment["provider_ref"]
        outcome = await provider.find_charge(key, ref)
        if outcome is None:  # the charge never reached the provider: nothing moved
            outcome = Outcome("failed", None, "not_charged")
        elif outcome.status == "processing" and payment["age"] >= give_up_after:
            outcome = await provider.cancel_charge(key, outcome.provider_ref or ref)
        if outcome.status == "processing" or _doubt(payment, outcome, provider.name):
            continue
        async with pool.acquire() as conn, conn.transaction():
            await settle_charge(conn, payment["id"], outcome)
        settled += 1
    return settled + await reconcile_refunds(pool=pool, provider=provider, older_than=older_than)


async def reconcile_refunds(
    *, pool: asyncpg.Pool, provider: Provider, older_than: float, payment_id: Any = None
) -> int:
    """Settle the refunds pending for `older_than` seconds (of one payment if given) from the
    provider's answer; one it never saw is asked for again, with the same key. How many."""
    settled = 0
    pending = await repository.refunds_in_flight(
        pool, older_than=older_than, limit=100, payment_id=payment_id
    )
    for refund in pending:
        key, charge_ref = str(refund["id"]), refund["charge_ref"] or ""
        outcome = await provider.find_refund(key, refund["provider_ref"], charge_ref)
        if outcome is None:
            outcome = await provider.refund(
                Refund(
                    key=key,
                    provider_ref=charge_ref,
                    amount_cents=refund["amount_cents"],
                    metadata={"refund_id": key, "payment_id": str(refund["payment_id"])},
                )
            )
        async with pool.acquire() as conn, conn.transaction():
            await settle_refund(conn, refund["id"], outcome)
        settled += outcome.status != "processing"
    return settled


async def daily_report(*, pool: asyncpg.Pool, request: DailyReportRequest) -> DailyReport:
    """One UTC day's totals per currency, from the ledger."""
    rows = await repository.daily_totals(pool, request.day)
    return DailyReport(
        day=request.day,
        currencies=[
            CurrencyTotals(
                currency=row["currency"],
                captured_cents=row["captured"],
                refunded_cents=row["refunded"],
                net_cents=row["captured"] - row["refunded"],
                count=row["count"],
            )
            for row in rows
        ],
    )


async def _announce(conn: Conn, event: Contract, *, subject: Any) -> None:
    """Announce a payment event, a copy to its buyer's sockets when it names them."""
    await announce(conn, event, about=(subject,), to_user=getattr(event, "user_id", None))
