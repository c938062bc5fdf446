"""Request and response bodies of the AI endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts import MAX_TEXT
from services.core.auth.schemas import Strict, examples


class TextIn(Strict):
    model_config = examples(
        {"text": "I love this teapot. It keeps tea hot for hours and looks lovely on the table."}
    )

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class SentimentOut(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    score: float


class TextAnalysisOut(BaseModel):
    model_config = examples(
        {
            "language": "en",
            "sentiment": {"label": "positive", "score": 0.8553},
            "keywords": ["teapot", "tea hot", "hours", "table"],
            "summary": "I love this teapot. It keeps tea hot for hours and looks lovely on the "
            "table.",
        }
    )

    language: str | None
    sentiment: SentimentOut
    keywords: list[str]
    summary: str
