"""SQL of core's payments domain: the payments and refunds core asked for, webhooks seen."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis.resources import Conn, Db, fetch_returned

PAYMENT_COLUMNS = (
    "id, order_id, user_id, amount_cents, refunded_cents, currency, status, failure_code, "
    "created_at, updated_at"
)
REFUND_COLUMNS = "id, payment_id, amount_cents, status, failure_code, created_at, updated_at"


async def insert_payment(
    conn: Conn, *, order: asyncpg.Record, payment_method: str
) -> asyncpg.Record:
    """A new `processing` payment of the order's total."""
    return await fetch_returned(
        conn,
        f"""INSERT INTO payments (order_id, user_id, amount_cents, currency, status,
                                  payment_method)
            VALUES ($1, $2, $3, $4, 'processing', $5) RETURNING {PAYMENT_COLUMNS}""",
        order["id"],
        order["user_id"],
        order["total_cents"],
        order["currency"],
        payment_method,
    )


async def live_payment(conn: Conn, order_id: Any) -> asyncpg.Record | None:
    """The order's payment that has not failed, if any."""
    return await conn.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 AND status <> 'failed'",
        order_id,
    )


async def payment_by_id(db: Db, payment_id: Any) -> asyncpg.Record | None:
    """A payment."""
    return await db.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1::uuid", payment_id
    )


async def payment_for_update(conn: Conn, payment_id: Any) -> asyncpg.Record | None:
    """A payment, locked for the transaction."""
    return await conn.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1::uuid FOR UPDATE", payment_id
    )


async def update_payment(
    conn: Conn,
    payment_id: Any,
    *,
    status: str,
    failure_code: str | None = None,
    refunded_cents: int | None = None,
) -> None:
    """Change a payment's state."""
    await conn.execute(
        """UPDATE payments SET status = $2, failure_code = coalesce($3, failure_code),
               refunded_cents = coalesce($4, refunded_cents), updated_at = clock_timestamp()
           WHERE id = $1""",
        payment_id,
        status,
        failure_code,
        refunded_cents,
    )


async def committed_refunds_cents(conn: Conn, payment_id: Any) -> int:
    """What the payment's refunds that have not failed take."""
    return int(
        await conn.fetchval(
            """SELECT coalesce(sum(amount_cents), 0) FROM refunds
               WHERE payment_id = $1 AND status <> 'failed'""",
            payment_id,
        )
    )


async def insert_refund(conn: Conn, *, payment_id: Any, amount_cents: int) -> asyncpg.Record:
    """A new pending refund."""
    return await fetch_returned(
        conn,
        f"""INSERT INTO refunds (payment_id, amount_cents, status) VALUES ($1, $2, 'pending')
            RETURNING {REFUND_COLUMNS}""",
        payment_id,
        amount_cents,
    )


async def settle_refund(
    conn: Conn, refund_id: Any, *, status: str, failure_code: str | None = None
) -> None:
    """Record a pending refund's outcome."""
    await conn.execute(
        """UPDATE refunds SET status = $2, failure_code = $3, updated_at = clock_timestamp()
           WHERE id = $1 AND status = 'pending'""",
        refund_id,
        status,
        failure_code,
    )


async def record_webhook(conn: Conn, *, provider: str, event_id: str, event_type: str) -> bool:
    """Remember a provider event; False if it was seen before."""
    return bool(
        await conn.fetchval(
            """INSERT INTO webhook_events (provider, event_id, event_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            provider,
            event_id,
            event_type,
        )
    )


async def notify_settled(conn: Conn, channel: str, payment_id: Any) -> None:
    """Tell every instance, once the transaction commits, that a payment changed."""
    await conn.execute("SELECT pg_notify($1, $2)", channel, str(payment_id))
