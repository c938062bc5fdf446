"""Recommendations: products bought together (learned from paid orders), else similar ones.

Paid orders arrive as `order.paid` events; each one's basket is kept once. A `Trainer` retrains
the model every `ai_recommend_interval` seconds and as soon as `ai_recommend_after_orders` new
baskets wait, at most once per `ai_recommend_min_gap` (one worker at a time: the others find
the lock taken). The model lives in
PostgreSQL, so every worker answers from the same one and a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Gauge, Histogram

from chassis.errors import DATABASE_FAILURES
from chassis.telemetry import Metrics
from contracts import OrderPaid, Recommendation, Recommendations, RecommendationsRequest
from services.ai.catalog.service import LiveIndex
from services.ai.recommendations import model, repository

log = logging.getLogger("relais.ai.recommendations")
TRAINING_LOCK = 0x52454C41_49524543  # "RELAIREC"


class RecommendationMetrics:
    """The model's age and how long training takes."""

    def __init__(self, metrics: Metrics) -> None:
        self.trained_at: datetime | None = None
        Gauge(
            "relais_ai_recommendations_age_seconds",
            "Seconds since the co-purchase model was trained (NaN: never).",
            ["service"],
            registry=metrics.registry,
        ).labels(metrics.service).set_function(self.age)
        self.training = Histogram(
            "relais_ai_recommendations_training_seconds",
            "Seconds one training of the co-purchase model took.",
            ["service"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60),
            registry=metrics.registry,
        ).labels(metrics.service)

    def age(self) -> float:
        """Seconds since the model was trained."""
        if self.trained_at is None:
            return float("nan")
        return (datetime.now(UTC) - self.trained_at).total_seconds()


class Trainer:
    """Retrains the co-purchase model on a schedule and when enough new orders arrive."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        work: Executor,
        metrics: RecommendationMetrics,
        *,
        every: float,
        after_orders: int,
        min_gap: float,
        partners: int,
    ) -> None:
        self.pool = pool
        self.work = work
        self.metrics = metrics
        self.every = every
        self.after_orders = after_orders
        self.min_gap = min_gap
        self.partners = partners
        self._news = asyncio.Event()

    def heard(self) -> None:
        """A new basket was recorded."""
        self._news.set()

    async def train(self) -> int:
        """Learn the model from every basket and store it; how many baskets (0 when another
        worker is training)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", TRAINING_LOCK):
                return 0
            trained_at = datetime.now(UTC)
            started = time.perf_counter()
            baskets = await repository.baskets(conn)
            learned = await asyncio.get_running_loop().run_in_executor(
                self.work, lambda: model.train(baskets, partners=self.partners)
            )
            pairs = [
                (product, partner, score)
                for product, found in learned.items()
                for partner, score in found
            ]
            seconds = time.perf_counter() - started
            await repository.replace_model(
                conn, pairs, trained_at=trained_at, baskets=len(baskets), seconds=seconds
            )
        self.metrics.training.observe(seconds)
        self.metrics.trained_at = trained_at
        return len(baskets)

    async def run(self) -> None:
        """Train on schedule, and early when `after_orders` new baskets wait (at most once per
        `min_gap`)."""
        self.metrics.trained_at = await repository.trained_at(self.pool)
        deadline = time.monotonic() + self._first_wait()
        last = -self.min_gap
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), max(0.0, deadline - time.monotonic()))
            self._news.clear()
            try:
                due = time.monotonic() >= deadline
                if not due and await repository.new_baskets(self.pool) < self.after_orders:
                    continue
                await asyncio.sleep(max(0.0, last + self.min_gap - time.monotonic()))
                count = await self.train()
                last, deadline = time.monotonic(), time.monotonic() + self.every
                if count:
                    log.info("co-purchase model trained on %d baskets", count)
                self.metrics.trained_at = await repository.trained_at(self.pool)
            except DATABASE_FAILURES as exc:
                log.warning("training the co-purchase model failed (%r)", exc)
                await asyncio.sleep(1)

    def _first_wait(self) -> float:
        age = self.metrics.age()
        return 0.0 if age != age or age >= self.every else self.every - age  # NaN: never


async def record_order(*, pool: asyncpg.Pool, event: OrderPaid, trainer: Trainer) -> None:
    """Keep a paid order's basket, once, and tell the trainer."""
    products = sorted({line.product_id for line in event.items})
    if await repository.record_basket(pool, event.order_id, products, event.paid_at):
        trainer.heard()


async def recommend(
    *, pool: asyncpg.Pool, live: LiveIndex, request: RecommendationsRequest
) -> Recommendations:
    """Products bought together with the product, best first; when its history gives fewer
    than asked, its nearest neighbours by embedding fill the rest."""
    found = [
        Recommendation(product_id=row["related_id"], score=row["score"], reason="bought_together")
        for row in await repository.partners(pool, request.product_id, request.limit)
    ]
    missing = request.limit - len(found)
    vector = live.index.vector_of(request.product_id)
    if missing > 0 and vector is not None:
        taken = {item.product_id for item in found}
        for hit in live.index.search(vector, request.limit + 1, exclude=request.product_id):
            if hit.product_id not in taken and missing > 0:
                found.append(
                    Recommendation(product_id=hit.product_id, score=hit.score, reason="similar")
                )
                missing -= 1
    return Recommendations(items=found)
