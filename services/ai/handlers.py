"""What the AI worker answers: a table from request contract to function. CPU-bound work runs
off the event loop: text and speech in the worker's model processes, images in its threads."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel

from chassis.messaging import AppRpcHandler
from contracts import (
    AudioAnalysis,
    AudioAnalysisRequest,
    ImageAnalysis,
    ImageAnalysisRequest,
    Media,
    TextAnalysis,
    TextAnalysisRequest,
)
from services.ai import speech, text
from services.ai.audio import measure
from services.ai.image import analyze_image as image_analysis
from services.ai.keys import CLAIMS, SPEECH, TEXT, WORK


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


# The RPCs served, each on the method named by its request's type.
RPCS: Mapping[type[BaseModel], AppRpcHandler] = {
    TextAnalysisRequest: analyze_text,
    ImageAnalysisRequest: analyze_image,
    AudioAnalysisRequest: analyze_audio,
}
