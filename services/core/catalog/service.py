"""The product catalog, read through a two-tier cache."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis.data import CachedBody, TieredCache
from chassis.errors import Conflict, NotFound
from chassis.http import decode_cursor, dumps, page
from services.core.catalog import repository


def product_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public view of a product row."""
    return dict(row)


async def create_product(
    *, pool: asyncpg.Pool, cache: TieredCache, fields: dict[str, Any]
) -> dict[str, Any]:
    """Add a product; 409 if its sku is taken."""
    try:
        row = await repository.insert_product(pool, fields)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"A product with sku {fields['sku']!r} already exists") from exc
    await cache.invalidate(str(row["id"]))
    return product_json(row)


async def cached_product(*, pool: asyncpg.Pool, cache: TieredCache, product_id: str) -> CachedBody:
    """The product's JSON body and ETag, from the cache when possible; 404 if absent."""

    async def load() -> bytes | None:
        row = await repository.product_by_id(pool, product_id)
        return None if row is None else dumps(product_json(row))

    cached = await cache.get(product_id, load)
    if cached is None:
        raise NotFound("No such product")
    return cached


async def list_products(
    *,
    pool: asyncpg.Pool,
    q: str | None,
    category: str | None,
    min_price: int | None,
    max_price: int | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of live products matching the filters, oldest first."""
    pattern = None
    if q is not None:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    rows = await repository.products_page(
        pool,
        pattern=pattern,
        category=category,
        min_price=min_price,
        max_price=max_price,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    return page(rows, limit, product_json)


async def update_product(
    *, pool: asyncpg.Pool, cache: TieredCache, product_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a product and drop it from every instance's cache."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await repository.update_product(conn, product_id, changes)
            if row is None:
                raise NotFound("No such product")
            await cache.record(conn, product_id)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"A product with sku {changes.get('sku')!r} already exists") from exc
    await cache.invalidate(product_id)
    return product_json(row)


async def delete_product(*, pool: asyncpg.Pool, cache: TieredCache, product_id: str) -> None:
    """Retire a product and drop it from every instance's cache."""
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.delete_product(conn, product_id):
            raise NotFound("No such product")
        await cache.record(conn, product_id)
    await cache.invalidate(product_id)
