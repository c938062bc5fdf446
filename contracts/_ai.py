"""The AI worker's RPCs (exchange `relais.rpc`, routing key = the request's type)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts._base import Contract

MAX_TEXT = 20_000


class TextAnalysisRequest(Contract):
    """Analyze a text: its language, sentiment, keywords and an extractive summary."""

    type: Literal["ai.text.analyze"] = "ai.text.analyze"
    version: Literal[1] = 1
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Sentiment(BaseModel):
    """VADER's compound score in [-1, 1], and its label (±0.05 is neutral)."""

    label: Literal["positive", "negative", "neutral"]
    score: float


class TextAnalysis(Contract):
    """What the worker found in a text."""

    type: Literal["ai.text.analysis"] = "ai.text.analysis"
    version: Literal[1] = 1
    language: str | None  # ISO 639-1, None when no language is reliable
    sentiment: Sentiment
    keywords: list[str]
    summary: str  # at most three of the text's own sentences, in their order
