"""The product catalog, read through a two-tier cache."""

from __future__ import annotations

from typing import Any

import asyncpg

from chassis import messaging
from chassis.data import CachedBody, Conn, TieredCache
from chassis.errors import Conflict, NotFound
from chassis.http import decode_cursor, dumps, page
from contracts import ProductCreated, ProductDeleted, ProductUpdated
from services.core.audit.service import Actor
from services.core.catalog import repository


def product_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public view of a product row."""
    return dict(row)


async def create_product(
    *, pool: asyncpg.Pool, cache: TieredCache, fields: dict[str, Any], actor: Actor
) -> dict[str, Any]:
    """Add a product and announce it; 409 if its sku is taken."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await repository.insert_product(conn, fields)
            await announce(conn, row, ProductCreated)
            await actor.record(
                conn, "product.created", subject=row["id"], details={"sku": row["sku"]}
            )
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
    *,
    pool: asyncpg.Pool,
    cache: TieredCache,
    product_id: str,
    changes: dict[str, Any],
    actor: Actor,
) -> dict[str, Any]:
    """Change a product and drop it from every instance's cache."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await repository.update_product(conn, product_id, changes)
            if row is None:
                raise NotFound("No such product")
            await announce(conn, row, ProductUpdated)
            await cache.record(conn, product_id)
            await actor.record(
                conn, "product.updated", subject=product_id, details={"changed": sorted(changes)}
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"A product with sku {changes.get('sku')!r} already exists") from exc
    await cache.invalidate(product_id)
    return product_json(row)


async def delete_product(
    *, pool: asyncpg.Pool, cache: TieredCache, product_id: str, actor: Actor
) -> None:
    """Retire a product and drop it from every instance's cache."""
    async with pool.acquire() as conn, conn.transaction():
        deleted_at = await repository.delete_product(conn, product_id)
        if deleted_at is None:
            raise NotFound("No such product")
        deleted = ProductDeleted(product_id=product_id, updated_at=deleted_at)
        await messaging.announce(conn, deleted, about=_about(deleted))
        await cache.record(conn, product_id)
        await actor.record(conn, "product.deleted", subject=product_id)
    await cache.invalidate(product_id)


async def announce(
    conn: Conn, row: asyncpg.Record, event: type[ProductCreated | ProductUpdated]
) -> None:
    """Put the product's event in the outbox, in the transaction of its change."""
    fact = event(
        product_id=row["id"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        price_cents=row["price_cents"],
        currency=row["currency"].strip(),
        updated_at=row["updated_at"],
    )
    await messaging.announce(conn, fact, about=_about(fact))


def _about(event: ProductCreated | ProductUpdated | ProductDeleted) -> tuple[object, ...]:
    return event.product_id, event.updated_at.isoformat()
