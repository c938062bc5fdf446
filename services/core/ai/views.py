"""HTTP views of the AI domain: authenticated, limited per account."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from chassis.data import DB_POOL, REDIS
from chassis.http import (
    RATE_LIMITER,
    ApiRoutes,
    Principal,
    Upload,
    authenticated,
    json_body,
    json_response,
    path_uuid,
    query_params,
    uploaded_file,
)
from chassis.messaging import ClaimCheck
from contracts import MAX_AUDIO_SECONDS, MAX_MEDIA
from services.core.ai import service
from services.core.ai.chat import Turn, replies
from services.core.ai.schemas import (
    AudioAnalysisOut,
    ChatIn,
    ChatOut,
    ImageAnalysisOut,
    RecommendationsOut,
    RecommendationsQuery,
    SearchOut,
    SearchQuery,
    TextAnalysisOut,
    TextIn,
)
from services.core.catalog.service import cached_product
from services.core.keys import (
    CONVERSATIONS,
    CORE_SETTINGS,
    LANGUAGE_MODEL,
    PRODUCT_CACHE,
    RPC_CLIENT,
)

routes = ApiRoutes("ai")
WORKER_ANSWERS = {429: None, 503: None, 504: None}
IMAGE = Upload("image", "An image Pillow decodes: PNG, JPEG, GIF, WebP, BMP, TIFF…", MAX_MEDIA)
AUDIO = Upload(
    "audio", f"A WAV, FLAC or OGG recording of at most {MAX_AUDIO_SECONDS:g} s", MAX_MEDIA
)


async def limited(request: web.Request, *, lookup: bool = False) -> Principal:
    """The caller's account within its AI budget (429 past it): analyses and the assistant's
    turns share one, searches and recommendations (`lookup`) another."""
    principal = await authenticated(request)
    settings = request.app[CORE_SETTINGS]
    limit, scope = (
        (settings.ai_search_rate_limit, "ai-search") if lookup else (settings.ai_rate_limit, "ai")
    )
    await request.app[RATE_LIMITER].enforce(limit, scope, principal.user_id)
    return principal


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


@routes.route(
    "GET",
    "/api/ai/search",
    summary="The catalog's products nearest in meaning to `q` (sentence embeddings), "
    "optionally filtered by category and price, best first",
    auth="user",
    query=SearchQuery,
    responses={200: SearchOut, **WORKER_ANSWERS},
)
async def search(request: web.Request) -> web.Response:
    await limited(request, lookup=True)
    query = query_params(request, SearchQuery)
    deadline = request.app[CORE_SETTINGS].ai_deadline
    return json_response(
        await service.search(rpc=request.app[RPC_CLIENT], query=query, deadline=deadline)
    )


@routes.route(
    "GET",
    "/api/products/{id}/recommendations",
    summary="Products customers bought together with this one (learned from paid orders); "
    "for a product without that history, its nearest neighbours by embedding",
    auth="user",
    query=RecommendationsQuery,
    responses={200: RecommendationsOut, 404: None, **WORKER_ANSWERS},
)
async def recommendations(request: web.Request) -> web.Response:
    await limited(request, lookup=True)
    product_id = path_uuid(request)
    query = query_params(request, RecommendationsQuery)
    await cached_product(
        pool=request.app[DB_POOL], cache=request.app[PRODUCT_CACHE], product_id=product_id
    )
    found = await service.recommend(
        rpc=request.app[RPC_CLIENT],
        product_id=product_id,
        limit=query.limit,
        deadline=request.app[CORE_SETTINGS].ai_deadline,
    )
    return json_response(found)


@routes.route(
    "POST",
    "/api/ai/chat",
    summary="A turn with the shopping assistant: it retrieves the catalog's products for the "
    "conversation so far and answers from them. `Accept: text/event-stream` streams the reply "
    "as server-sent events (`products`, then `delta`s, then `done` with this body)",
    auth="user",
    body=ChatIn,
    responses={200: ChatOut, 404: None, **WORKER_ANSWERS},
)
async def chat(request: web.Request) -> web.StreamResponse:
    principal = await limited(request)
    message = await json_body(request, ChatIn)
    app, settings = request.app, request.app[CORE_SETTINGS]
    turn = await service.retrieve(
        rpc=app[RPC_CLIENT],
        pool=app[DB_POOL],
        conversations=app[CONVERSATIONS],
        user_id=principal.user_id,
        message=message,
        products=settings.ai_chat_products,
        min_score=settings.ai_chat_min_score,
        deadline=settings.ai_deadline,
    )
    streamed = "text/event-stream" in request.headers.get("Accept", "")
    if not streamed:
        parts, source = [], "catalog"
        async for chunk, writer in replies(turn, app[LANGUAGE_MODEL], stream=False):
            parts.append(chunk)
            source = writer
        return json_response(await finish(request, principal, turn, "".join(parts), source))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # NGINX passes each event on at once
        }
    )
    await response.prepare(request)
    products = [str(p["id"]) for p in turn.products]
    await send_event(
        response, "products", {"conversation_id": str(turn.conversation_id), "products": products}
    )
    parts, source = [], "catalog"
    async for chunk, writer in replies(turn, app[LANGUAGE_MODEL], stream=True):
        parts.append(chunk)
        source = writer
        await send_event(response, "delta", {"text": chunk})
    await send_event(
        response, "done", await finish(request, principal, turn, "".join(parts), source)
    )
    await response.write_eof()
    return response


async def finish(
    request: web.Request, principal: Principal, turn: Turn, reply: str, source: str
) -> dict[str, Any]:
    """Keep the turn in the conversation; the response's body."""
    await request.app[CONVERSATIONS].append(
        turn.conversation_id, principal.user_id, turn.message, reply
    )
    return {
        "reply": reply,
        "conversation_id": str(turn.conversation_id),
        "products": [str(product["id"]) for product in turn.products],
        "source": source,
    }


async def send_event(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    """One server-sent event."""
    await response.write(b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
