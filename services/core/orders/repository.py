"""SQL of the orders domain."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis.pagination import Position
from chassis.resources import Conn, Db, fetch_returned

ORDER_COLUMNS = "id, user_id, status, total_cents, currency, created_at, updated_at"


async def try_lock_key(conn: Conn, scope: str) -> bool:
    """Take a transaction-scoped advisory lock on `scope`; False if another request holds it."""
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", scope)
    )


async def stored_response(
    conn: Conn, *, user_id: str, key: str, retention_hours: int
) -> asyncpg.Record | None:
    """The stored outcome of an earlier request with this key, if still retained."""
    return await conn.fetchrow(
        """SELECT request_hash, status_code, response FROM idempotency_keys
           WHERE user_id = $1::uuid AND key = $2
             AND created_at > now() - make_interval(hours => $3)""",
        user_id,
        key,
        retention_hours,
    )


async def store_response(
    conn: Conn,
    *,
    user_id: str,
    key: str,
    request_hash: str,
    status: int,
    response: str,
) -> None:
    """Remember a request's outcome under its key (replacing an expired one)."""
    await conn.execute(
        """INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response)
           VALUES ($1::uuid, $2, $3, $4, $5::jsonb)
           ON CONFLICT (user_id, key) DO UPDATE
           SET request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code,
               response = EXCLUDED.response, created_at = now()""",
        user_id,
        key,
        request_hash,
        status,
        response,
    )


async def delete_expired_keys(pool: Db, *, retention_hours: int) -> int:
    """Forget idempotency keys older than the retention; how many were deleted."""
    status = await pool.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
        retention_hours,
    )
    return int(status.split()[-1])


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
    """Insert a pending order and its lines `(product_id, quantity, unit_price_cents)`."""
    order = await fetch_returned(
        conn,
        f"""INSERT INTO orders (user_id, status, total_cents, currency)
            VALUES ($1::uuid, 'pending_payment', $2, $3) RETURNING {ORDER_COLUMNS}""",
        user_id,
        total_cents,
        currency,
    )
    await conn.executemany(
        """INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
           VALUES ($1, $2, $3, $4)""",
        [(order["id"], *line) for line in lines],
    )
    return order


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


async def order_by_id(conn: Db, order_id: str) -> asyncpg.Record | None:
    """An order."""
    return await conn.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1::uuid", order_id)


async def orders_page(
    pool: asyncpg.Pool, *, user_id: str, before: Position | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` of a user's orders, newest first, before `before`."""
    created_at, row_id = before or (None, None)
    return await pool.fetch(
        f"""SELECT {ORDER_COLUMNS} FROM orders
            WHERE user_id = $1::uuid
              AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $4""",
        user_id,
        created_at,
        row_id,
        limit,
    )


async def items_of(conn: Db, order_ids: list[Any]) -> list[asyncpg.Record]:
    """The lines of the given orders."""
    return await conn.fetch(
        """SELECT order_id, product_id, quantity, unit_price_cents FROM order_items
           WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, product_id""",
        order_ids,
    )
