"""SQL of the search index: the stored vectors (the AI schema) and the catalog they follow
(core's products, which the worker's role may read)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import numpy as np

from chassis.data import Db
from contracts import ProductFacts

# Who hears of a stored change: every worker's in-memory index (the payload: a product id; an
# empty payload after a reconnect means "reload").
CHANNEL = "ai_index"
VECTOR_COLUMNS = "product_id, name, category, price_cents, embedding"


async def stored(db: Db, product_id: UUID) -> asyncpg.Record | None:
    """The stored version of a product, its text's digest and its embedding."""
    return await db.fetchrow(
        "SELECT updated_at, text_digest, embedding FROM product_vectors WHERE product_id = $1",
        product_id,
    )


async def store_vector(db: Db, facts: ProductFacts, digest: bytes, embedding: np.ndarray) -> bool:
    """Store a product's embedding unless a later version is stored; tell every worker.
    False if a later version was there."""
    changed = await db.fetchval(
        f"""WITH changed AS (
                INSERT INTO product_vectors AS v (product_id, updated_at, live, name, category,
                                                  price_cents, currency, text_digest, embedding)
                VALUES ($1, $2, true, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (product_id) DO UPDATE SET
                    updated_at = excluded.updated_at, live = true, name = excluded.name,
                    category = excluded.category, price_cents = excluded.price_cents,
                    currency = excluded.currency, text_digest = excluded.text_digest,
                    embedding = excluded.embedding, indexed_at = clock_timestamp()
                WHERE v.updated_at < excluded.updated_at
                RETURNING product_id)
            SELECT pg_notify('{CHANNEL}', product_id::text) IS NULL FROM changed""",
        facts.product_id,
        facts.updated_at,
        facts.name,
        facts.category,
        facts.price_cents,
        facts.currency,
        digest,
        embedding.astype(np.float32).tobytes(),
    )
    return changed is not None


async def store_deletion(db: Db, product_id: UUID, updated_at: datetime) -> bool:
    """Drop a product's embedding, keeping its version (a late update cannot revive it); tell
    every worker. False if a later version was there."""
    changed = await db.fetchval(
        f"""WITH changed AS (
                INSERT INTO product_vectors AS v (product_id, updated_at, live)
                VALUES ($1, $2, false)
                ON CONFLICT (product_id) DO UPDATE SET
                    updated_at = excluded.updated_at, live = false, text_digest = NULL,
                    embedding = NULL, indexed_at = clock_timestamp()
                WHERE v.updated_at < excluded.updated_at
                RETURNING product_id)
            SELECT pg_notify('{CHANNEL}', product_id::text) IS NULL FROM changed""",
        product_id,
        updated_at,
    )
    return changed is not None


async def vectors(db: Db, product_ids: list[UUID] | None = None) -> list[asyncpg.Record]:
    """The stored rows of `product_ids` (every live one when None); a deleted product's row
    has no embedding."""
    if product_ids is None:
        return await db.fetch(f"SELECT {VECTOR_COLUMNS} FROM product_vectors WHERE live")
    return await db.fetch(
        f"SELECT {VECTOR_COLUMNS} FROM product_vectors WHERE product_id = ANY($1::uuid[])",
        product_ids,
    )


def _behind(catalog: str) -> str:
    # Catalog rows the index does not reflect yet: new, changed, or deleted since stored.
    return f"""FROM "{catalog}".products p
               LEFT JOIN product_vectors v ON v.product_id = p.id
               WHERE (v.product_id IS NULL AND p.deleted_at IS NULL)
                  OR v.updated_at < p.updated_at"""


async def behind(db: Db, catalog: str, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` products whose stored version is behind the catalog's, oldest change
    first."""
    return await db.fetch(
        f"""SELECT p.id AS product_id, p.name, p.description, p.category, p.price_cents,
                   btrim(p.currency) AS currency, p.updated_at, p.deleted_at IS NOT NULL AS gone
            {_behind(catalog)} ORDER BY p.updated_at LIMIT $1""",
        limit,
    )


async def lag(db: Db, catalog: str) -> tuple[float, int]:
    """How long the oldest change the index does not reflect has waited (seconds, 0 when none),
    and how many changes wait."""
    row = await db.fetchrow(
        f"""SELECT coalesce(extract(epoch FROM clock_timestamp() - min(p.updated_at)), 0)
                       AS seconds, count(*) AS waiting
            {_behind(catalog)}"""
    )
    assert row is not None
    return float(row["seconds"]), int(row["waiting"])
