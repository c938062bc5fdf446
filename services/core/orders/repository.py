"""SQL of the orders domain."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis.data import Conn, Db, fetch_returned
from chassis.http import Position

ORDER_COLUMNS = "id, user_id, status, total_cents, currency, created_at, updated_at"


async def lock_products(
    conn: Conn, product_ids: list[Any], *, live_only: bool
) -> list[asyncpg.Record]:
    """Lock products in id order (one fixed order, so concurrent orders cannot deadlock)."""
    return await conn.fetch(
        """SELECT id, price_cents, currency, stock FROM products
           WHERE id = ANY($1::uuid[]) AND (deleted_at IS NULL OR NOT $2)
           ORDER BY id FOR UPDATE""",
        product_ids,
        live_only,
    )


async def adjust_stock(conn: Conn, product_ids: list[Any], deltas: list[int]) -> None:
    """Add `deltas` to the stock of `product_ids` (the CHECK keeps stock from going negative)."""
    await conn.execute(
        """UPDATE products p SET stock = p.stock + d.delta, updated_at = clock_timestamp()
           FROM unnest($1::uuid[], $2::int[]) AS d(id, delta) WHERE p.id = d.id""",
        product_ids,
        deltas,
    )


async def insert_order(
    conn: Conn,
    *,
    user_id: str,
    total_cents: int,
    currency: str,
    lines: list[tuple[Any, int, int]],
) -> asyncpg.Record:
    """Insert a pending order and its lines `(product_id, quantity, unit_price_cents)`, in one
    statement."""
    product_ids, quantities, prices = zip(*lines, strict=True)
    return await fetch_returned(
        conn,
        f"""WITH o AS (
                INSERT INTO orders (user_id, status, total_cents, currency)
                VALUES ($1::uuid, 'pending_payment', $2, $3) RETURNING {ORDER_COLUMNS}
            ), lines AS (
                INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
                SELECT o.id, l.product_id, l.quantity, l.price
                FROM o, unnest($4::uuid[], $5::int[], $6::bigint[])
                     AS l(product_id, quantity, price)
            )
            SELECT {ORDER_COLUMNS} FROM o""",
        user_id,
        total_cents,
        currency,
        list(product_ids),
        list(quantities),
        list(prices),
    )


async def order_for_update(conn: Conn, order_id: str) -> asyncpg.Record | None:
    """An order, locked for the rest of the transaction."""
    return await conn.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1::uuid FOR UPDATE", order_id
    )


async def set_status(conn: Conn, order_id: Any, status: str) -> asyncpg.Record:
    """Change an order's status."""
    return await fetch_returned(
        conn,
        f"""UPDATE orders SET status = $2, updated_at = clock_timestamp()
            WHERE id = $1 RETURNING {ORDER_COLUMNS}""",
        order_id,
        status,
    )


async def has_payment_in_progress(conn: Conn, order_id: Any) -> bool:
    """Whether a payment of the order is still `processing`."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = $1 AND status = 'processing')",
            order_id,
        )
    )


async def unpaid_orders_past_hold(
    conn: Conn, *, hold_seconds: float, limit: int
) -> list[asyncpg.Record]:
    """Unpaid orders untouched for `hold_seconds` with no payment in progress, locked (skipping
    rows another instance holds)."""
    return await conn.fetch(
        f"""SELECT {ORDER_COLUMNS} FROM orders o
            WHERE status IN ('pending_payment', 'payment_failed')
              AND updated_at < clock_timestamp() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM payments p
                              WHERE p.order_id = o.id AND p.status = 'processing')
            ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        hold_seconds,
        limit,
    )


async def order_by_id(conn: Db, order_id: str) -> asyncpg.Record | None:
    """An order."""
    return await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1::uuid", order_id)


async def orders_page(
    pool: asyncpg.Pool,
    *,
    user_id: str | None,
    status: str | None,
    before: Position | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` orders, newest first, before `before`: a user's (every user's when
    `user_id` is None), of one status if given."""
    created_at, row_id = before or (None, None)
    return await pool.fetch(
        f"""SELECT {ORDER_COLUMNS} FROM orders
            WHERE ($1::uuid IS NULL OR user_id = $1::uuid)
              AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $5""",
        user_id,
        status,
        created_at,
        row_id,
        limit,
    )


async def payments_of(conn: Db, order_ids: list[Any]) -> list[asyncpg.Record]:
    """The payments of the given orders (id and status), oldest first."""
    return await conn.fetch(
        """SELECT order_id, id, status FROM payments
           WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, created_at, id""",
        order_ids,
    )


async def items_of(conn: Db, order_ids: list[Any]) -> list[asyncpg.Record]:
    """The lines of the given orders."""
    return await conn.fetch(
        """SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
           WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, product_id""",
        order_ids,
    )
