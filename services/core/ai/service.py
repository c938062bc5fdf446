"""The AI routes' work: ask the worker, within the deadline. A file travels in the request's
message up to `INLINE_MEDIA_MAX`; a bigger one waits in Redis under a claim the message
carries, deleted when the call ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg

from chassis.messaging import ClaimCheck, RpcClient
from contracts import (
    INLINE_MEDIA_MAX,
    AudioAnalysis,
    AudioAnalysisRequest,
    Contract,
    ImageAnalysis,
    ImageAnalysisRequest,
    Media,
    Recommendations,
    RecommendationsRequest,
    SearchRequest,
    SearchResults,
    TextAnalysis,
    TextAnalysisRequest,
)
from services.core.ai.chat import Conversations, Turn, retrieval_query
from services.core.ai.schemas import ChatIn, SearchQuery
from services.core.catalog import repository as catalog_repository

R = TypeVar("R", bound=Contract)


# What each media route sends the worker, and the answer it expects (by the form's field).
FILE_ANALYSES: dict[
    str, tuple[type[ImageAnalysisRequest | AudioAnalysisRequest], type[Contract]]
] = {
    "image": (ImageAnalysisRequest, ImageAnalysis),
    "audio": (AudioAnalysisRequest, AudioAnalysis),
}


async def ask(rpc: RpcClient, request: Contract, reply: type[R], deadline: float) -> dict[str, Any]:
    """The worker's answer to `request` as a response body: 503 at once if no worker serves
    it, 504 at the deadline, the worker's own problem if it refuses."""
    answer = await rpc.call(request.type_name(), request, reply, deadline=deadline)
    return answer.model_dump(exclude={"type", "version"})


async def analyze_text(*, rpc: RpcClient, text: str, deadline: float) -> dict[str, Any]:
    """The worker's analysis of `text`."""
    return await ask(rpc, TextAnalysisRequest(text=text), TextAnalysis, deadline)


@contextlib.asynccontextmanager
async def media(claims: ClaimCheck, data: bytes, deadline: float) -> AsyncIterator[Media]:
    """`data` as a request carries it, for the block."""
    if len(data) <= INLINE_MEDIA_MAX:
        yield Media(size=len(data), data=data)
        return
    async with claims.holding(data, ttl=deadline) as key:
        yield Media(size=len(data), claim=key)


async def analyze_file(
    *, kind: str, rpc: RpcClient, claims: ClaimCheck, data: bytes, deadline: float
) -> dict[str, Any]:
    """The worker's analysis of a file of `kind` (`image`, `audio`)."""
    request, reply = FILE_ANALYSES[kind]
    async with media(claims, data, deadline) as file:
        return await ask(rpc, request(media=file), reply, deadline)


async def search(*, rpc: RpcClient, query: SearchQuery, deadline: float) -> dict[str, Any]:
    """The catalog's products nearest in meaning to the query, filtered."""
    request = SearchRequest(
        query=query.q,
        limit=query.limit,
        category=query.category,
        min_price=query.min_price,
        max_price=query.max_price,
    )
    return await ask(rpc, request, SearchResults, deadline)


async def recommend(
    *, rpc: RpcClient, product_id: str, limit: int, deadline: float
) -> dict[str, Any]:
    """Products bought together with the product, else similar ones."""
    request = RecommendationsRequest(product_id=UUID(product_id), limit=limit)
    return await ask(rpc, request, Recommendations, deadline)


async def retrieve(
    *,
    rpc: RpcClient,
    pool: asyncpg.Pool,
    conversations: Conversations,
    user_id: str,
    message: ChatIn,
    products: int,
    min_score: float,
    deadline: float,
) -> Turn:
    """The conversation so far (404 if it is not the account's) and the products nearest in
    meaning to it (at least `min_score`, and half the best one's), as the catalog holds them
    now."""
    history = await conversations.history(message.conversation_id, user_id)
    query = retrieval_query(history, message.message)
    found = await ask(rpc, SearchRequest(query=query, limit=products), SearchResults, deadline)
    hits = found["items"]
    floor = max(min_score, hits[0]["score"] / 2) if hits else min_score
    ids = [hit["product_id"] for hit in hits if hit["score"] >= floor]
    rows = await catalog_repository.products_by_ids(pool, ids)
    return Turn(
        conversation_id=message.conversation_id or uuid4(),
        message=message.message,
        history=history,
        products=[dict(row) for row in rows],
    )
