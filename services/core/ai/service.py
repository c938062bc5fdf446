"""The AI routes' work: ask the worker, within the deadline."""

from __future__ import annotations

from typing import Any

from chassis.messaging import RpcClient
from contracts import TextAnalysis, TextAnalysisRequest


async def analyze_text(*, rpc: RpcClient, text: str, deadline: float) -> dict[str, Any]:
    """The worker's analysis of `text`: 503 at once if no worker serves it, 504 at the
    deadline."""
    analysis = await rpc.call(
        TextAnalysisRequest.type_name(),
        TextAnalysisRequest(text=text),
        TextAnalysis,
        deadline=deadline,
    )
    return analysis.model_dump(exclude={"type", "version"})
