"""SQL of core's side of checkout: the payments and refunds core asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from chassis.data import Conn, Db, fetch_returned

PAYMENT_COLUMNS = (
    "id, order_id, user_id, amount_cents, refunded_cents, currency, status, failure_code, "
    "created_at, updated_at"
)
REFUND_COLUMNS = "id, payment_id, amount_cents, status, failure_code, created_at, updated_at"


async def insert_payment(
    conn: Conn, *, order: asyncpg.Record, payment_method: str, payment_id: Any = None
) -> asyncpg.Record:
    """A new `processing` payment of the order's total (UniqueViolation if one is live)."""
    return await fetch_returned(
        conn,
        f"""INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status,
                                  payment_method)
            VALUES (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, 'processing', $6)
            RETURNING {PAYMENT_COLUMNS}""",
        payment_id,
        order["id"],
        order["user_id"],
        order["total_cents"],
        order["currency"],
        payment_method,
    )


async def payment_by_id(db: Db, payment_id: Any) -> asyncpg.Record | None:
    """A payment."""
    return await db.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1::uuid", payment_id
    )


async def payments_of_order(db: Db, order_id: Any) -> list[asyncpg.Record]:
    """An order's payments, oldest first."""
    return await db.fetch(
        f"""SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1::uuid
            ORDER BY created_at, id""",
        order_id,
    )


async def order_owner(db: Db, order_id: Any) -> Any:
    """The user who placed an order; None if there is no such order."""
    return await db.fetchval("SELECT user_id FROM orders WHERE id = $1::uuid", order_id)


async def refund_of_payment(db: Db, payment_id: Any, refund_id: Any) -> asyncpg.Record | None:
    """A refund of a payment."""
    return await db.fetchrow(
        f"SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $2::uuid AND payment_id = $1::uuid",
        payment_id,
        refund_id,
    )


async def payment_for_update(conn: Conn, payment_id: Any) -> asyncpg.Record | None:
    """A payment, locked for the transaction."""
    return await conn.fetchrow(
        f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1::uuid FOR UPDATE", payment_id
    )


@dataclass
class Change:
    """What one payments event changes; None leaves a field as it is."""

    payment_id: Any
    order_id: Any
    payment_status: str | None = None
    failure_code: str | None = None
    refunded_cents: int | None = None
    order_status: str | None = None
    refund_id: Any = None
    refund_status: str | None = None
    # The payment succeeded for an order that is no longer payable: refund it.
    refund_unpayable: bool = False


async def lock_payment_and_order(conn: Conn, payment_id: Any) -> asyncpg.Record | None:
    """A payment with its order's status, both rows locked for the transaction."""
    return await conn.fetchrow(
        """SELECT p.id, p.order_id, p.status, p.refunded_cents, p.amount_cents, p.currency,
                  p.created_at, o.status AS order_status
           FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE p.id = $1::uuid FOR UPDATE OF p, o""",
        payment_id,
    )


async def apply_change(conn: Conn, change: Change, *, notify: str) -> None:
    """Apply a change to the payment, its order and its refund in one statement, and tell
    every instance once the transaction commits."""
    await conn.execute(
        """WITH payment AS (
               UPDATE payments SET status = coalesce($2, status),
                   failure_code = coalesce($3, failure_code),
                   refunded_cents = greatest(refunded_cents, coalesce($4, 0)),
                   updated_at = clock_timestamp()
               WHERE id = $1 AND ($2::text IS NOT NULL OR $4::bigint > refunded_cents)
           ), ordered AS (
               UPDATE orders SET status = $6, updated_at = clock_timestamp()
               WHERE id = $5 AND $6::text IS NOT NULL
           ), refund AS (
               UPDATE refunds SET status = $8, failure_code = $3, updated_at = clock_timestamp()
               WHERE id = $7 AND status = 'pending' AND $8::text IS NOT NULL
           )
           SELECT pg_notify($9, $1::text)""",
        change.payment_id,
        change.payment_status,
        change.failure_code,
        change.refunded_cents,
        change.order_id,
        change.order_status,
        change.refund_id,
        change.refund_status,
        notify,
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


async def insert_refund(
    conn: Conn, *, payment_id: Any, amount_cents: int, reason: str = "requested"
) -> asyncpg.Record:
    """A new pending refund (`reason`: requested, or order_not_payable)."""
    return await fetch_returned(
        conn,
        f"""INSERT INTO refunds (payment_id, amount_cents, status, reason)
            VALUES ($1, $2, 'pending', $3) RETURNING {REFUND_COLUMNS}""",
        payment_id,
        amount_cents,
        reason,
    )


async def refund_reason(conn: Conn, refund_id: Any) -> str | None:
    """Why a refund was made (None for a refund this service did not record)."""
    reason: str | None = await conn.fetchval("SELECT reason FROM refunds WHERE id = $1", refund_id)
    return reason


async def paid_order(conn: Conn, order_id: Any) -> asyncpg.Record:
    """An order with its lines as two arrays: `product_ids` and their `quantities`."""
    return await fetch_returned(
        conn,
        """SELECT o.id, o.user_id, o.updated_at,
                  array_agg(i.product_id ORDER BY i.product_id) AS product_ids,
                  array_agg(i.quantity ORDER BY i.product_id) AS quantities
           FROM orders o JOIN order_items i ON i.order_id = o.id
           WHERE o.id = $1::uuid GROUP BY o.id""",
        order_id,
    )


async def email_verified(db: Db, user_id: str) -> bool:
    """Whether the account has proven its e-mail address."""
    return bool(
        await db.fetchval(
            "SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1::uuid", user_id
        )
    )
