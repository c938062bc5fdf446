"""The AI worker's app: its models, loaded once, and the RPCs it serves, with health and
metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from PIL import Image

from chassis.data import REDIS, redis_client
from chassis.http import DEFAULT_CHECKS, create_service_app, setup_health
from chassis.messaging import ClaimCheck, amqp_broker, broker_ready, serving_rpcs
from chassis.telemetry import METRICS
from services.ai import handlers
from services.ai.keys import AI_SETTINGS, CLAIMS, MODELS, SPEECH, WORK
from services.ai.metrics import AiMetrics
from services.ai.recognizer import Recognizer
from services.ai.settings import AiSettings
from services.ai.text import load_text_models

log = logging.getLogger("relais.ai")


async def models(app: web.Application) -> AsyncIterator[None]:
    """Load the models once and time each: the text models in a thread (seconds), the speech
    model in each of its processes; the work threads after."""
    settings = app[AI_SETTINGS]
    metrics = AiMetrics(app[METRICS])
    # Pillow only warns about an image past its pixel limit: refuse it instead (422).
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    started = time.perf_counter()
    recognizer = Recognizer(settings.ai_speech_processes)
    try:
        await recognizer.warm_up()
        metrics.loaded("speech", time.perf_counter() - started)
        started = time.perf_counter()
        text_models = await asyncio.to_thread(load_text_models, tuple(settings.ai_languages))
        metrics.loaded("text", time.perf_counter() - started)
    except BaseException:
        recognizer.close()
        raise
    log.info("models loaded: %s", metrics.summary())
    app[SPEECH], app[MODELS] = recognizer, text_models
    app[WORK] = ThreadPoolExecutor(settings.ai_threads, thread_name_prefix="ai-work")
    yield
    app[WORK].shutdown(wait=True, cancel_futures=True)
    await asyncio.to_thread(recognizer.close)


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
    if MODELS not in app:
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
