"""Semantic search over the catalog, and the index that follows it.

How the index follows the catalog:
- Core announces every product change through its outbox (`product.created|updated|deleted`).
  One worker takes each event from the shared queue, embeds the product's text (unless only its
  price or stock changed: the stored vector is kept) and stores the vector in PostgreSQL with
  the catalog's `updated_at`; a store never replaces a later version, so a redelivered or late
  event changes nothing. The store NOTIFYs every worker, and each one loads the row into its
  in-memory index (`LiveIndex`): a change is searchable on every worker in milliseconds.
- A worker starts from the stored vectors (nothing is embedded again), then catches up with the
  catalog: products the index does not reflect (created or changed while no worker ran, or an
  event lost) are embedded and stored. It checks again every `ai_index_check_interval`; the
  age of the oldest change it does not reflect is its lag (`relais_ai_index_lag_seconds`), and
  past `ai_index_max_lag` it catches up at once.
- A lost LISTEN connection reloads the whole index once it is back (notifications sent while
  it was down are lost).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np
from prometheus_client import Gauge, Histogram

from chassis.errors import DATABASE_FAILURES
from chassis.telemetry import Metrics
from contracts import ProductDeleted, ProductFacts, SearchHit, SearchRequest, SearchResults
from services.ai.catalog import repository
from services.ai.catalog.index import Entry, VectorIndex
from services.ai.embeddings import Embedder

log = logging.getLogger("relais.ai.index")
# One worker at a time catches up (the others would embed the same products).
CATCH_UP_LOCK = 0x52454C41_49444558  # "RELAIDEX"


def product_text(facts: Mapping[str, Any] | asyncpg.Record) -> str:
    """What is embedded of a product: its name, category and description."""
    return f"{facts['name']}. {facts['category']}. {facts['description']}".strip()


class IndexMetrics:
    """The index's size, how far behind the catalog it is, and how late changes reach it."""

    def __init__(self, metrics: Metrics) -> None:
        def gauge(name: str, documentation: str) -> Any:
            return Gauge(name, documentation, ["service"], registry=metrics.registry).labels(
                metrics.service
            )

        self.size = gauge("relais_ai_index_products", "Products in this worker's search index.")
        self.lag = gauge(
            "relais_ai_index_lag_seconds",
            "Age of the oldest catalog change the search index does not reflect (0: none).",
        )
        self.waiting = gauge(
            "relais_ai_index_behind_products",
            "Catalog changes the search index does not reflect yet.",
        )
        self.delay = Histogram(
            "relais_ai_index_delay_seconds",
            "Seconds from a product's change in the catalog to its vector stored.",
            ["service"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60),
            registry=metrics.registry,
        ).labels(metrics.service)


async def apply_product(
    *, pool: asyncpg.Pool, embedder: Embedder, facts: ProductFacts, metrics: IndexMetrics
) -> bool:
    """Store a product's vector unless a later version is stored (embedding its text only if
    it changed); False if nothing changed."""
    current = await repository.stored(pool, facts.product_id)
    if current is not None and current["updated_at"] >= facts.updated_at:
        return False
    text = product_text(facts.model_dump())
    digest = hashlib.sha256(text.encode()).digest()
    if current is not None and current["text_digest"] == digest:
        vector = np.frombuffer(current["embedding"], np.float32)
    else:
        vector = await embedder.embed(text)
    changed = await repository.store_vector(pool, facts, digest, vector)
    if changed:
        metrics.delay.observe(max(0.0, _age(facts.updated_at)))
    return changed


async def apply_deletion(*, pool: asyncpg.Pool, event: ProductDeleted) -> bool:
    """Drop a product from the index unless a later version is stored."""
    return await repository.store_deletion(pool, event.product_id, event.updated_at)


async def catch_up(
    *, pool: asyncpg.Pool, embedder: Embedder, catalog: str, batch: int, metrics: IndexMetrics
) -> int:
    """Store what the catalog holds and the index does not reflect, `batch` products at a
    time (each batch embedded at once); how many. Skipped while another worker does it."""
    done = 0
    async with pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", CATCH_UP_LOCK):
            return 0
        try:
            while rows := await repository.behind(pool, catalog, batch):
                gone = [row for row in rows if row["gone"]]
                live = [row for row in rows if not row["gone"]]
                for row in gone:
                    await repository.store_deletion(pool, row["product_id"], row["updated_at"])
                texts = [product_text(row) for row in live]
                vectors = await embedder.embed_many(texts)
                for row, text, vector in zip(live, texts, vectors, strict=True):
                    digest = hashlib.sha256(text.encode()).digest()
                    facts = ProductFacts(**{name: row[name] for name in ProductFacts.model_fields})
                    await repository.store_vector(pool, facts, digest, vector)
                done += len(rows)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", CATCH_UP_LOCK)
    metrics.waiting.set(0)
    return done


async def check_lag(
    *,
    pool: asyncpg.Pool,
    embedder: Embedder,
    catalog: str,
    max_lag: float,
    batch: int,
    metrics: IndexMetrics,
) -> int:
    """Measure how far behind the catalog the index is; past `max_lag`, catch up."""
    seconds, waiting = await repository.lag(pool, catalog)
    metrics.lag.set(seconds)
    metrics.waiting.set(waiting)
    if seconds <= max_lag:
        return 0
    log.warning(
        "the index is %.1f s behind the catalog (%d changes): catching up", seconds, waiting
    )
    done = await catch_up(
        pool=pool, embedder=embedder, catalog=catalog, batch=batch, metrics=metrics
    )
    metrics.lag.set((await repository.lag(pool, catalog))[0])
    return done


class LiveIndex:
    """This worker's in-memory index, kept equal to the stored vectors: loaded whole at start
    and after a lost LISTEN connection, then row by row as stores are announced."""

    def __init__(self, pool: asyncpg.Pool, metrics: IndexMetrics) -> None:
        self.pool = pool
        self.metrics = metrics
        self.index = VectorIndex()
        self.loaded = asyncio.Event()
        self._pending: set[UUID] = set()
        self._reload = True
        self._wake = asyncio.Event()
        self._wake.set()

    def heard(self, payload: str) -> None:
        """A notification: a product's stored row changed (an empty payload: reload all)."""
        if payload:
            self._pending.add(UUID(payload))
        else:
            self._reload = True
        self._wake.set()

    async def refresh(self) -> int:
        """Apply what was announced since the last call; how many products."""
        if self._reload:
            self._reload, self._pending = False, set()
            rows = await repository.vectors(self.pool)
            fresh = VectorIndex(capacity=max(1024, len(rows)))
            for row in rows:
                fresh.upsert(_entry(row))
            self.index = fresh
            self.loaded.set()
        else:
            ids, self._pending = list(self._pending), set()
            if not ids:
                return 0
            rows = await repository.vectors(self.pool, ids)
            live = {row["product_id"]: row for row in rows if row["embedding"] is not None}
            for product_id in ids:
                if product_id in live:
                    self.index.upsert(_entry(live[product_id]))
                else:
                    self.index.remove(product_id)
        self.metrics.size.set(len(self.index))
        return len(rows)

    async def run(self) -> None:
        """Refresh whenever something is announced, for the app's life."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, reload = set(self._pending), self._reload
            try:
                await self.refresh()
            except DATABASE_FAILURES as exc:
                log.warning("refreshing the index failed (%r); retrying", exc)
                self._pending |= pending
                self._reload |= reload
                await asyncio.sleep(1)
                self._wake.set()


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        product_id=row["product_id"],
        name=row["name"],
        category=row["category"],
        price_cents=row["price_cents"],
        vector=np.frombuffer(row["embedding"], np.float32),
    )


def _age(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


async def search(*, live: LiveIndex, embedder: Embedder, request: SearchRequest) -> SearchResults:
    """The products nearest in meaning to the query, filtered, best first."""
    query = await embedder.embed(request.query)
    hits = live.index.search(
        query,
        request.limit,
        category=request.category,
        min_price=request.min_price,
        max_price=request.max_price,
    )
    return SearchResults(
        items=[SearchHit(product_id=h.product_id, name=h.name, score=h.score) for h in hits]
    )
