"""HTTP views of the AI domain: authenticated, limited per account."""

from __future__ import annotations

from aiohttp import web

from chassis.data import REDIS
from chassis.http import (
    RATE_LIMITER,
    ApiRoutes,
    Upload,
    authenticated,
    json_body,
    json_response,
    uploaded_file,
)
from chassis.messaging import ClaimCheck
from contracts import MAX_AUDIO_SECONDS, MAX_MEDIA
from services.core.ai import service
from services.core.ai.schemas import AudioAnalysisOut, ImageAnalysisOut, TextAnalysisOut, TextIn
from services.core.keys import CORE_SETTINGS, RPC_CLIENT

routes = ApiRoutes("ai")
WORKER_ANSWERS = {429: None, 503: None, 504: None}
IMAGE = Upload("image", "An image Pillow decodes: PNG, JPEG, GIF, WebP, BMP, TIFF…", MAX_MEDIA)
AUDIO = Upload(
    "audio", f"A WAV, FLAC or OGG recording of at most {MAX_AUDIO_SECONDS:g} s", MAX_MEDIA
)


async def limited(request: web.Request) -> None:
    """The caller's account within its analysis budget (429 past it)."""
    principal = await authenticated(request)
    settings = request.app[CORE_SETTINGS]
    await request.app[RATE_LIMITER].enforce(settings.ai_rate_limit, "ai", principal.user_id)


@routes.route(
    "POST",
    "/api/ai/text/analyze",
    summary="A text's language, sentiment, keywords and extractive summary (the AI worker)",
    auth="user",
    body=TextIn,
    responses={200: TextAnalysisOut, **WORKER_ANSWERS},
)
async def analyze_text(request: web.Request) -> web.Response:
    await limited(request)
    data = await json_body(request, TextIn)
    analysis = await service.analyze_text(
        rpc=request.app[RPC_CLIENT],
        text=data.text,
        deadline=request.app[CORE_SETTINGS].ai_deadline,
    )
    return json_response(analysis)


@routes.route(
    "POST",
    "/api/ai/image/analyze",
    summary="An image's format, size, dominant colours and perceptual hash (the AI worker); "
    "a decompression bomb is 422",
    auth="user",
    upload=IMAGE,
    responses={200: ImageAnalysisOut, **WORKER_ANSWERS},
)
async def analyze_image(request: web.Request) -> web.Response:
    deadline = request.app[CORE_SETTINGS].ai_deadline
    return await analyze_file(request, IMAGE, deadline)


@routes.route(
    "POST",
    "/api/ai/audio/analyze",
    summary="A recording's levels, silence, transcript (English) and the transcript's language "
    "and sentiment (the AI worker); longer than 60 s is 422",
    auth="user",
    upload=AUDIO,
    responses={200: AudioAnalysisOut, **WORKER_ANSWERS},
)
async def analyze_audio(request: web.Request) -> web.Response:
    deadline = request.app[CORE_SETTINGS].ai_audio_deadline
    return await analyze_file(request, AUDIO, deadline)


async def analyze_file(request: web.Request, upload: Upload, deadline: float) -> web.Response:
    """The worker's analysis of the file `upload` names, within `deadline` seconds."""
    await limited(request)
    data = await uploaded_file(request, upload.field, max_bytes=upload.max_bytes)
    claims = ClaimCheck(request.app[REDIS], request.app[CORE_SETTINGS].redis_key_prefix)
    analysis = await service.analyze_file(
        kind=upload.field, rpc=request.app[RPC_CLIENT], claims=claims, data=data, deadline=deadline
    )
    return json_response(analysis)
