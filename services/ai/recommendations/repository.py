"""SQL of the recommendations: baskets of paid orders, the model learned from them."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from chassis.data import Conn, Db

MODEL = "co_purchase"


async def record_basket(db: Db, order_id: UUID, product_ids: list[UUID], paid_at: datetime) -> bool:
    """Keep what a paid order bought together (once per order); False if it was known."""
    status = await db.execute(
        """INSERT INTO baskets (order_id, product_ids, paid_at) VALUES ($1, $2, $3)
           ON CONFLICT (order_id) DO NOTHING""",
        order_id,
        product_ids,
        paid_at,
    )
    return bool(status == "INSERT 0 1")


async def baskets(db: Db) -> list[list[UUID]]:
    """Every basket's products."""
    return [row["product_ids"] for row in await db.fetch("SELECT product_ids FROM baskets")]


async def new_baskets(db: Db) -> int:
    """Baskets recorded since the model was trained."""
    count: int = await db.fetchval(
        """SELECT count(*) FROM baskets
           WHERE recorded_at > coalesce((SELECT trained_at FROM models WHERE name = $1),
                                        '-infinity')""",
        MODEL,
    )
    return count


async def replace_model(
    conn: Conn,
    pairs: list[tuple[UUID, UUID, float]],
    *,
    trained_at: datetime,
    baskets: int,
    seconds: float,
) -> None:
    """Replace the learned partners with `pairs` and note when (in the caller's transaction)."""
    await conn.execute("DELETE FROM related_products")
    await conn.copy_records_to_table(
        "related_products", records=pairs, columns=["product_id", "related_id", "score"]
    )
    await conn.execute(
        """INSERT INTO models (name, trained_at, baskets, seconds) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO UPDATE SET trained_at = excluded.trained_at,
               baskets = excluded.baskets, seconds = excluded.seconds""",
        MODEL,
        trained_at,
        baskets,
        seconds,
    )


async def trained_at(db: Db) -> datetime | None:
    """When the model was last trained."""
    moment: datetime | None = await db.fetchval(
        "SELECT trained_at FROM models WHERE name = $1", MODEL
    )
    return moment


async def partners(db: Db, product_id: UUID, limit: int) -> list[asyncpg.Record]:
    """A product's learned partners that are still in the catalog, best first."""
    return await db.fetch(
        """SELECT r.related_id, r.score FROM related_products r
           JOIN product_vectors v ON v.product_id = r.related_id AND v.live
           WHERE r.product_id = $1 ORDER BY r.score DESC, r.related_id LIMIT $2""",
        product_id,
        limit,
    )
