"""What the AI worker answers: a table from request contract to function."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel

from chassis.messaging import AppRpcHandler
from contracts import TextAnalysis, TextAnalysisRequest
from services.ai.keys import MODELS, WORK


async def analyze_text(app: web.Application, request: TextAnalysisRequest) -> TextAnalysis:
    """Language, sentiment, keywords and summary, computed off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[WORK], app[MODELS].analyze, request.text)


# The RPCs served, each on the method named by its request's type.
RPCS: Mapping[type[BaseModel], AppRpcHandler] = {TextAnalysisRequest: analyze_text}
