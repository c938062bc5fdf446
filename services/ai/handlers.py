"""What the AI worker answers and consumes: tables from contract to function. CPU-bound work
runs off the event loop: text and speech in the worker's model processes, images and training
in its threads, embeddings on the embedder's thread."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel

from chassis.data import DB_POOL
from chassis.messaging import EVENTS as EVENTS_EXCHANGE
from chassis.messaging import AppMessageHandler, AppRpcHandler, WorkQueue
from contracts import (
    AudioAnalysis,
    AudioAnalysisRequest,
    ImageAnalysis,
    ImageAnalysisRequest,
    Media,
    OrderPaid,
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    Recommendations,
    RecommendationsRequest,
    SearchRequest,
    SearchResults,
    TextAnalysis,
    TextAnalysisRequest,
)
from services.ai import speech, text
from services.ai.audio import measure
from services.ai.catalog import service as catalog
from services.ai.image import analyze_image as image_analysis
from services.ai.keys import CLAIMS, EMBEDDER, INDEX, INDEX_METRICS, SPEECH, TEXT, TRAINER, WORK
from services.ai.recommendations import service as recommendations


async def analyze_text(app: web.Application, request: TextAnalysisRequest) -> TextAnalysis:
    """Language, sentiment, keywords and summary."""
    return await app[TEXT].run(text.analyze, request.text)


async def analyze_image(app: web.Application, request: ImageAnalysisRequest) -> ImageAnalysis:
    """Format, size, dominant colours and perceptual hash."""
    data = await media_bytes(app, request.media)
    return await asyncio.get_running_loop().run_in_executor(app[WORK], image_analysis, data)


async def analyze_audio(app: web.Application, request: AudioAnalysisRequest) -> AudioAnalysis:
    """The signal's measures, a transcript, and the transcript's language and sentiment."""
    data = await media_bytes(app, request.media)
    loop = asyncio.get_running_loop()
    signal = await loop.run_in_executor(app[WORK], measure, data)
    transcript = "" if signal.silent else await app[SPEECH].run(speech.transcribe, signal.pcm)
    heard = await app[TEXT].run(text.analyze, transcript) if transcript else None
    return AudioAnalysis(
        format=signal.format,
        duration_s=signal.duration_s,
        sample_rate=signal.sample_rate,
        channels=signal.channels,
        loudness_dbfs=signal.loudness_dbfs,
        peak_dbfs=signal.peak_dbfs,
        silence_ratio=signal.silence_ratio,
        transcript=transcript,
        language=heard.language if heard else None,
        sentiment=heard.sentiment if heard else None,
    )


async def media_bytes(app: web.Application, media: Media) -> bytes:
    """The file's bytes: in the message, or redeemed from its claim."""
    if media.data is not None:
        return media.data
    assert media.claim is not None  # one of the two, by the contract
    return await app[CLAIMS].redeem(media.claim)


async def search(app: web.Application, request: SearchRequest) -> SearchResults:
    """The catalog's products nearest in meaning to the query."""
    return await catalog.search(live=app[INDEX], embedder=app[EMBEDDER], request=request)


async def recommend(app: web.Application, request: RecommendationsRequest) -> Recommendations:
    """Products bought together with a product, else similar ones."""
    return await recommendations.recommend(pool=app[DB_POOL], live=app[INDEX], request=request)


async def product_changed(
    app: web.Application, event: ProductCreated | ProductUpdated, _: AbstractIncomingMessage
) -> None:
    """Embed and store the product as it is now (unless a later version is stored)."""
    await catalog.apply_product(
        pool=app[DB_POOL], embedder=app[EMBEDDER], facts=event, metrics=app[INDEX_METRICS]
    )


async def product_deleted(
    app: web.Application, event: ProductDeleted, _: AbstractIncomingMessage
) -> None:
    """Drop the product from the index."""
    await catalog.apply_deletion(pool=app[DB_POOL], event=event)


async def order_paid(app: web.Application, event: OrderPaid, _: AbstractIncomingMessage) -> None:
    """Keep what the order bought together."""
    await recommendations.record_order(pool=app[DB_POOL], event=event, trainer=app[TRAINER])


# The RPCs served, each on the method named by its request's type.
RPCS: Mapping[type[BaseModel], AppRpcHandler] = {
    TextAnalysisRequest: analyze_text,
    ImageAnalysisRequest: analyze_image,
    AudioAnalysisRequest: analyze_audio,
    SearchRequest: search,
    RecommendationsRequest: recommend,
}

# Core's events the worker learns from.
EVENTS: Mapping[type[BaseModel], AppMessageHandler] = {
    ProductCreated: product_changed,
    ProductUpdated: product_changed,
    ProductDeleted: product_deleted,
    OrderPaid: order_paid,
}

# The workers' shared queue of those events (declared by `make up` before any worker starts, so
# that no event published meanwhile is unroutable).
EVENT_QUEUE = WorkQueue("ai.catalog", EVENTS_EXCHANGE, EVENTS)
