"""The AI worker's app: its models, loaded once, the search index and the co-purchase model,
the events it learns from and the RPCs it serves, with health and metrics."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from PIL import Image

from chassis.data import DB_POOL, REDIS, postgres_pool, redis_client
from chassis.http import DEFAULT_CHECKS, create_service_app, setup_health
from chassis.messaging import (
    PG_LISTENER,
    ClaimCheck,
    amqp_broker,
    broker_ready,
    consume_work_queue,
    listening,
    serving_rpcs,
    setup_pg_listener,
)
from chassis.tasks import background, repeat
from chassis.telemetry import METRICS
from services.ai import embeddings, handlers, speech, text
from services.ai.catalog import repository as index_repository
from services.ai.catalog.service import IndexMetrics, LiveIndex, check_lag
from services.ai.embeddings import Embedder, EmbeddingMetrics
from services.ai.keys import (
    AI_SETTINGS,
    CLAIMS,
    EMBEDDER,
    INDEX,
    INDEX_METRICS,
    SPEECH,
    TEXT,
    TRAINER,
    WORK,
)
from services.ai.metrics import AiMetrics
from services.ai.pools import ModelPool
from services.ai.recommendations.service import RecommendationMetrics, Trainer
from services.ai.settings import AiSettings

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger("relais.ai")


async def models(app: web.Application) -> AsyncIterator[None]:
    """Start the models' processes and time each pool until every process has loaded its
    model and answered once; the image threads after."""
    settings = app[AI_SETTINGS]
    metrics = AiMetrics(app[METRICS])
    # Pillow only warns about an image past its pixel limit: refuse it instead (422).
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    pools: dict[str, tuple[ModelPool, Callable[..., object], object]] = {
        "speech": (
            ModelPool("speech", settings.ai_speech_processes, speech.start_recognizer),
            speech.transcribe,
            bytes(speech.RATE // 5),  # 0.1 s of silence
        ),
        "text": (
            ModelPool(
                "text", settings.ai_text_processes, text.start_text_models, settings.ai_languages
            ),
            text.analyze,
            "Warming up.",
        ),
    }

    async def load(model: str) -> None:
        pool, call, argument = pools[model]
        started = time.perf_counter()
        await pool.warm_up(call, argument)
        metrics.loaded(model, time.perf_counter() - started)

    async def load_embeddings() -> Embedder:
        started = time.perf_counter()
        model = await asyncio.to_thread(embeddings.load_model, settings.ai_embed_threads)
        embedder = Embedder(
            model,
            EmbeddingMetrics(app[METRICS]),
            window=settings.ai_embed_window_ms / 1000,
            max_batch=settings.ai_embed_max_batch,
        )
        await embedder.embed_many(["Warming up."])
        metrics.loaded("embeddings", time.perf_counter() - started)
        return embedder

    try:
        loading = asyncio.ensure_future(load_embeddings())
        # side by side; scipy.signal (resampling) is imported here, not by the commands
        resampling = asyncio.to_thread(importlib.import_module, "scipy.signal")
        await asyncio.gather(loading, resampling, *(load(model) for model in pools))
        embedder = loading.result()
    except BaseException:
        for pool, _, _ in pools.values():
            pool.close()
        raise
    log.info("models loaded: %s", metrics.summary())
    app[SPEECH], app[TEXT] = pools["speech"][0], pools["text"][0]
    app[EMBEDDER] = embedder
    app[WORK] = ThreadPoolExecutor(settings.ai_threads, thread_name_prefix="ai-work")
    async with background(app, embedder.run(), "embedding batches"):
        yield
    app[WORK].shutdown(wait=True, cancel_futures=True)
    embedder.close()
    for pool, _, _ in pools.values():
        await asyncio.to_thread(pool.close)


async def claims(app: web.Application) -> AsyncIterator[None]:
    """Redeem the claim checks of files too big for a message (Redis)."""
    app[CLAIMS] = ClaimCheck(app[REDIS], app[AI_SETTINGS].redis_key_prefix)
    yield


async def search_index(app: web.Application) -> AsyncIterator[None]:
    """Load the stored vectors, follow the stores every worker announces, and compare the
    index with the catalog now and every `ai_index_check_interval` (catching up when behind)."""
    settings, pool = app[AI_SETTINGS], app[DB_POOL]
    metrics = app[INDEX_METRICS] = IndexMetrics(app[METRICS])
    live = app[INDEX] = LiveIndex(pool, metrics)
    app[PG_LISTENER].subscribe(index_repository.CHANNEL, live.heard)
    await live.refresh()
    checker = repeat(
        lambda: check_lag(
            pool=pool,
            embedder=app[EMBEDDER],
            catalog=settings.ai_catalog_schema,
            max_lag=settings.ai_index_max_lag,
            batch=settings.ai_embed_max_batch,
            metrics=metrics,
        ),
        every=settings.ai_index_check_interval,
        what="catching the search index up with the catalog",
    )
    async with background(app, live.run(), "index refresh"), background(app, checker, "index"):
        yield


async def recommendations(app: web.Application) -> AsyncIterator[None]:
    """Train the co-purchase model on schedule and when enough new orders arrive."""
    settings = app[AI_SETTINGS]
    trainer = app[TRAINER] = Trainer(
        app[DB_POOL],
        app[WORK],
        RecommendationMetrics(app[METRICS]),
        every=settings.ai_recommend_interval,
        after_orders=settings.ai_recommend_after_orders,
        min_gap=settings.ai_recommend_min_gap,
        partners=settings.ai_recommend_partners,
    )
    async with background(app, trainer.run(), "recommendations"):
        yield


async def events(app: web.Application) -> AsyncIterator[None]:
    """Learn from core's catalog and order events (one shared queue: each event once)."""
    queue = handlers.EVENT_QUEUE
    consumer = await consume_work_queue(
        app, queue.name, exchange=queue.exchange, handlers=queue.handlers
    )
    yield
    await consumer.stop()


async def rpcs(app: web.Application) -> AsyncIterator[None]:
    """Serve the RPCs once the models are loaded."""
    settings = app[AI_SETTINGS]
    async with serving_rpcs(
        app, handlers.RPCS, prefetch=settings.ai_prefetch, concurrency=settings.ai_threads
    ):
        yield


async def models_ready(app: web.Application) -> None:
    """Ready once the models and the search index are loaded."""
    if TEXT not in app or INDEX not in app:
        raise RuntimeError("models are loading")


def create_app(settings: AiSettings) -> web.Application:
    """Assemble the worker: broker, models, RPC servers, health and metrics."""
    app = create_service_app(settings)
    app[AI_SETTINGS] = settings
    setup_pg_listener(app)
    app.cleanup_ctx.extend(
        [
            postgres_pool,
            amqp_broker,
            redis_client,
            claims,
            models,
            search_index,
            recommendations,
            events,
            rpcs,
            listening,
        ]
    )
    setup_health(app, {**DEFAULT_CHECKS, "rabbitmq": broker_ready, "models": models_ready})
    return app
