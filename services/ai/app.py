"""The AI worker's app: its models, loaded once, and the RPCs it serves, with health and
metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from chassis.http import create_service_app, setup_health
from chassis.messaging import amqp_broker, broker_ready, serving_rpcs
from chassis.telemetry import METRICS
from services.ai import handlers
from services.ai.keys import AI_SETTINGS, MODELS, WORK
from services.ai.metrics import AiMetrics
from services.ai.settings import AiSettings
from services.ai.text import load_text_models

log = logging.getLogger("relais.ai")


async def models(app: web.Application) -> AsyncIterator[None]:
    """Load the models once, in a thread (seconds), and time it; the work threads after."""
    settings = app[AI_SETTINGS]
    started = time.perf_counter()
    app[MODELS] = await asyncio.to_thread(load_text_models, tuple(settings.ai_languages))
    elapsed = time.perf_counter() - started
    AiMetrics(app[METRICS]).loaded("text", elapsed)
    log.info("text models loaded in %.1f s", elapsed)
    app[WORK] = ThreadPoolExecutor(settings.ai_threads, thread_name_prefix="ai-work")
    yield
    app[WORK].shutdown(wait=True, cancel_futures=True)


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
    app.cleanup_ctx.extend([amqp_broker, models, rpcs])
    setup_health(app, {"rabbitmq": broker_ready, "models": models_ready})
    return app
