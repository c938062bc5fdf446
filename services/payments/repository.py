"""SQL of the payments worker: payments, refunds and the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from chassis.data import Conn, Db, fetch_returned
from contracts import ChargePayment, RefundPayment

PAYMENT_COLUMNS = (
    "id, order_id, user_id, amount_cents, currency, status, refunded_cents, payment_method, "
    "provider, provider_ref, failure_code, created_at, updated_at"
)
# The two accounts of a card payment: what the provider owes us, and what we earned.
RECEIVABLE = "psp_receivable"
SALES = "sales"


async def ensure_payment(conn: Conn, command: ChargePayment, provider: str) -> asyncpg.Record:
    """The payment a charge command describes, inserted as `processing` on first sight."""
    return await fetch_returned(
        conn,
        f"""WITH inserted AS (
                INSERT INTO payments
                    (id, order_id, user_id, amount_cents, currency, status, payment_method,
                     provider)
                VALUES ($1, $2, $3, $4, $5, 'processing', $6, $7) ON CONFLICT (id) DO NOTHING
                RETURNING {PAYMENT_COLUMNS}
            )
            SELECT {PAYMENT_COLUMNS} FROM inserted
            UNION ALL
            SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1""",
        command.payment_id,
        command.order_id,
        command.user_id,
        command.amount_cents,
        command.currency,
        command.payment_method,
        provider,
    )


async def payment_for_update(
    conn: Conn, *, payment_id: Any = None, provider_ref: str | None = None
) -> asyncpg.Record | None:
    """A payment found by our id or the provider's, locked for the transaction."""
    return await find_payment(conn, payment_id=payment_id, provider_ref=provider_ref, lock=True)


async def find_payment(
    db: Db, *, payment_id: Any = None, provider_ref: str | None = None, lock: bool = False
) -> asyncpg.Record | None:
    """A payment found by our id or the provider's (locked for the transaction if `lock`)."""
    return await db.fetchrow(
        f"""SELECT {PAYMENT_COLUMNS} FROM payments
            WHERE ($1::uuid IS NOT NULL AND id = $1) OR ($1::uuid IS NULL AND provider_ref = $2)
            LIMIT 1 {"FOR UPDATE" if lock else ""}""",
        payment_id,
        provider_ref,
    )


async def update_payment(
    conn: Conn,
    payment_id: Any,
    *,
    status: str,
    provider_ref: str | None = None,
    failure_code: str | None = None,
    refunded_cents: int | None = None,
) -> asyncpg.Record:
    """Change a payment's state (a missing reference or refund total keeps the stored one)."""
    return await fetch_returned(
        conn,
        f"""UPDATE payments SET status = $2, provider_ref = coalesce($3, provider_ref),
                failure_code = $4, refunded_cents = coalesce($5, refunded_cents),
                updated_at = clock_timestamp()
            WHERE id = $1 RETURNING {PAYMENT_COLUMNS}""",
        payment_id,
        status,
        provider_ref,
        failure_code,
        refunded_cents,
    )


async def ensure_refund(conn: Conn, command: RefundPayment) -> asyncpg.Record:
    """The refund a command describes, inserted as `pending` on first sight."""
    await conn.execute(
        """INSERT INTO refunds (id, payment_id, amount_cents, status)
           VALUES ($1, $2, $3, 'pending') ON CONFLICT (id) DO NOTHING""",
        command.refund_id,
        command.payment_id,
        command.amount_cents,
    )
    return await fetch_returned(
        conn, "SELECT id, amount_cents, status FROM refunds WHERE id = $1", command.refund_id
    )


async def pending_refunds_cents(conn: Conn, payment_id: Any, *, besides: Any) -> int:
    """What other refunds of this payment, not yet settled, will take."""
    return int(
        await conn.fetchval(
            """SELECT coalesce(sum(amount_cents), 0) FROM refunds
               WHERE payment_id = $1 AND status = 'pending' AND id <> $2""",
            payment_id,
            besides,
        )
    )


async def refund_for_update(conn: Conn, refund_id: Any) -> asyncpg.Record | None:
    """A refund, locked for the transaction."""
    return await conn.fetchrow(
        "SELECT id, payment_id, amount_cents, status FROM refunds WHERE id = $1 FOR UPDATE",
        refund_id,
    )


async def payments_in_flight(db: Db, *, older_than: float, limit: int) -> list[asyncpg.Record]:
    """Payments still `processing` that have not changed for `older_than` seconds."""
    return await db.fetch(
        f"""SELECT {PAYMENT_COLUMNS}, extract(epoch FROM clock_timestamp() - created_at) AS age
            FROM payments WHERE status = 'processing'
              AND updated_at < clock_timestamp() - make_interval(secs => $1)
            ORDER BY updated_at LIMIT $2""",
        older_than,
        limit,
    )


async def refunds_in_flight(
    db: Db, *, older_than: float, limit: int, payment_id: Any = None
) -> list[asyncpg.Record]:
    """Refunds still `pending` untouched for `older_than` seconds (of one payment if given),
    with the provider's reference of their payment."""
    return await db.fetch(
        """SELECT r.id, r.payment_id, r.amount_cents, r.provider_ref,
                  p.provider_ref AS charge_ref
           FROM refunds r JOIN payments p ON p.id = r.payment_id
           WHERE r.status = 'pending'
             AND r.updated_at < clock_timestamp() - make_interval(secs => $1)
             AND ($3::uuid IS NULL OR r.payment_id = $3)
           ORDER BY r.updated_at LIMIT $2""",
        older_than,
        limit,
        payment_id,
    )


async def record_refund_ref(conn: Conn, refund_id: Any, provider_ref: str) -> None:
    """Remember the provider's reference of a refund it has not settled yet."""
    await conn.execute(
        """UPDATE refunds SET provider_ref = $2, updated_at = clock_timestamp()
           WHERE id = $1 AND status = 'pending'""",
        refund_id,
        provider_ref,
    )


async def settle_refund_row(
    conn: Conn, refund_id: Any, *, status: str, provider_ref: str | None, failure_code: str | None
) -> None:
    """Record a refund's outcome."""
    await conn.execute(
        """UPDATE refunds SET status = $2, provider_ref = $3, failure_code = $4,
               updated_at = clock_timestamp() WHERE id = $1""",
        refund_id,
        status,
        provider_ref,
        failure_code,
    )


async def post_transaction(
    conn: Conn,
    *,
    kind: str,
    reference: str,
    payment_id: Any,
    currency: str,
    entries: list[tuple[str, int]],
) -> bool:
    """Append a ledger transaction and its entries (one statement); False if `reference` is
    already posted."""
    accounts, amounts = zip(*entries, strict=True)
    posted = await conn.fetchval(
        """WITH t AS (
               INSERT INTO ledger_transactions (kind, reference, payment_id, currency)
               VALUES ($1, $2, $3, $4) ON CONFLICT (reference) DO NOTHING RETURNING id
           ), e AS (
               INSERT INTO ledger_entries (transaction_id, account, amount_cents)
               SELECT t.id, entry.account, entry.amount
               FROM t, unnest($5::text[], $6::bigint[]) AS entry(account, amount)
           )
           SELECT count(*) FROM t""",
        kind,
        reference,
        payment_id,
        currency,
        list(accounts),
        list(amounts),
    )
    return bool(posted)


async def daily_totals(db: Db, day: date) -> list[asyncpg.Record]:
    """Per currency, one UTC day's captured and refunded amounts and charge count."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return await db.fetch(
        """SELECT t.currency,
                  coalesce(sum(e.amount_cents) FILTER (WHERE t.kind = 'charge'), 0) AS captured,
                  coalesce(-sum(e.amount_cents) FILTER (WHERE t.kind = 'refund'), 0) AS refunded,
                  count(*) FILTER (WHERE t.kind = 'charge') AS count
           FROM ledger_transactions t
           JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = $3
           WHERE t.created_at >= $1 AND t.created_at < $2
           GROUP BY t.currency ORDER BY t.currency""",
        start,
        start + timedelta(days=1),
        RECEIVABLE,
    )
