"""The AI worker's app: its models, loaded once, and the RPCs it serves, with health and
metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from PIL import Image

from chassis.data import REDIS, redis_client
from chassis.http import DEFAULT_CHECKS, create_service_app, setup_health
from chassis.messaging import ClaimCheck, amqp_broker, broker_ready, serving_rpcs
from chassis.telemetry import METRICS
from services.ai import handlers, speech, text
from services.ai.keys import AI_SETTINGS, CLAIMS, SPEECH, TEXT, WORK
from services.ai.metrics import AiMetrics
from services.ai.pools import ModelPool
from services.ai.settings import AiSettings

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

    try:
        await asyncio.gather(*(load(model) for model in pools))  # side by side
    except BaseException:
        for pool, _, _ in pools.values():
            pool.close()
        raise
    log.info("models loaded: %s", metrics.summary())
    app[SPEECH], app[TEXT] = pools["speech"][0], pools["text"][0]
    app[WORK] = ThreadPoolExecutor(settings.ai_threads, thread_name_prefix="ai-work")
    yield
    app[WORK].shutdown(wait=True, cancel_futures=True)
    for pool, _, _ in pools.values():
        await asyncio.to_thread(pool.close)


async def claims(app: web.Application) -> AsyncIterator[None]:
    """Redeem the claim checks of files too big for a message (Redis)."""
    app[CLAIMS] = ClaimCheck(app[REDIS], app[AI_SETTINGS].redis_key_prefix)
    yield


async def rpcs(app: web.Application) -> AsyncIterator[None]:
    """Serve the RPCs once the models are loaded."""
    settings = app[AI_SETTINGS]
    async with serving_rpcs(
        app, handlers.RPCS, prefetch=settings.ai_prefetch, concurrency=settings.ai_threads
    ):
        yield


async def models_ready(app: web.Application) -> None:
    """Ready once the models are loaded."""
    if TEXT not in app:
        raise RuntimeError("models are loading")


def create_app(settings: AiSettings) -> web.Application:
    """Assemble the worker: broker, models, RPC servers, health and metrics."""
    app = create_service_app(settings)
    app[AI_SETTINGS] = settings
    app.cleanup_ctx.extend([amqp_broker, redis_client, claims, models, rpcs])
    setup_health(
        app, {"rabbitmq": broker_ready, "redis": DEFAULT_CHECKS["redis"], "models": models_ready}
    )
    return app
