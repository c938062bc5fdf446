"""HTTP views of the AI domain: authenticated, limited per account."""

from __future__ import annotations

from aiohttp import web

from chassis.http import RATE_LIMITER, ApiRoutes, authenticated, json_body, json_response
from services.core.ai import service
from services.core.ai.schemas import TextAnalysisOut, TextIn
from services.core.keys import CORE_SETTINGS, RPC_CLIENT

routes = ApiRoutes("ai")


@routes.route(
    "POST",
    "/api/ai/text/analyze",
    summary="A text's language, sentiment, keywords and extractive summary (the AI worker)",
    auth="user",
    body=TextIn,
    responses={200: TextAnalysisOut, 429: None, 503: None, 504: None},
)
async def analyze_text(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    settings = request.app[CORE_SETTINGS]
    await request.app[RATE_LIMITER].enforce(settings.ai_rate_limit, "ai", principal.user_id)
    data = await json_body(request, TextIn)
    analysis = await service.analyze_text(
        rpc=request.app[RPC_CLIENT], text=data.text, deadline=settings.ai_deadline
    )
    return json_response(analysis)
