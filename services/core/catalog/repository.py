"""SQL of the catalog domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from chassis.data import Db, fetch_returned
from chassis.http import Position

PRODUCT_COLUMNS = (
    "id, sku, name, description, price_cents, currency, stock, category, created_at, updated_at"
)
EDITABLE = ("sku", "name", "description", "price_cents", "currency", "stock", "category")


async def insert_product(db: Db, fields: dict[str, Any]) -> asyncpg.Record:
    """Insert a product (asyncpg.UniqueViolationError on a live duplicate sku)."""
    return await fetch_returned(
        db,
        f"""INSERT INTO products (sku, name, description, price_cents, currency, stock, category)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PRODUCT_COLUMNS}""",
        *(fields[name] for name in EDITABLE),
    )


async def product_by_id(pool: asyncpg.Pool, product_id: str) -> asyncpg.Record | None:
    """A live product."""
    return await pool.fetchrow(
        f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1::uuid AND deleted_at IS NULL",
        product_id,
    )


async def products_by_ids(db: Db, product_ids: list[Any]) -> list[asyncpg.Record]:
    """The live products among `product_ids`, in that order."""
    return await db.fetch(
        f"""SELECT {PRODUCT_COLUMNS} FROM products
            WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL
            ORDER BY array_position($1::uuid[], id)""",
        product_ids,
    )


async def products_page(
    pool: asyncpg.Pool,
    *,
    pattern: str | None,
    category: str | None,
    min_price: int | None,
    max_price: int | None,
    after: Position | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` live products matching the filters, after `after` in (created_at, id) order."""
    created_at, row_id = after or (None, None)
    return await pool.fetch(
        f"""SELECT {PRODUCT_COLUMNS} FROM products
            WHERE deleted_at IS NULL
              AND ($1::text IS NULL OR name ILIKE $1 OR description ILIKE $1)
              AND ($2::text IS NULL OR category = $2)
              AND ($3::bigint IS NULL OR price_cents >= $3)
              AND ($4::bigint IS NULL OR price_cents <= $4)
              AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid))
            ORDER BY created_at, id LIMIT $7""",
        pattern,
        category,
        min_price,
        max_price,
        created_at,
        row_id,
        limit,
    )


async def update_product(db: Db, product_id: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply `changes` to a live product; None if there is none."""
    names = [name for name in EDITABLE if name in changes]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    return await db.fetchrow(
        f"""UPDATE products SET {assignments}, updated_at = clock_timestamp()
            WHERE id = $1::uuid AND deleted_at IS NULL RETURNING {PRODUCT_COLUMNS}""",
        product_id,
        *(changes[name] for name in names),
    )


async def delete_product(db: Db, product_id: str) -> datetime | None:
    """Retire a live product (orders keep referring to it): when; None if there is none."""
    deleted_at: datetime | None = await db.fetchval(
        """UPDATE products SET deleted_at = clock_timestamp(), updated_at = clock_timestamp()
           WHERE id = $1::uuid AND deleted_at IS NULL RETURNING updated_at""",
        product_id,
    )
    return deleted_at
