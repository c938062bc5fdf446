"""Request and response bodies of the AI endpoints."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts import MAX_QUERY, MAX_RESULTS, MAX_TEXT
from services.core.auth.schemas import Strict, examples

MAX_MESSAGE = 2000


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


class ImageAnalysisOut(BaseModel):
    model_config = examples(
        {
            "format": "PNG",
            "width": 640,
            "height": 480,
            "mode": "RGB",
            "dominant_colors": ["#c0392b", "#ecf0f1"],
            "phash": "d1c4c6c3939393b3",
        }
    )

    format: str
    width: int
    height: int
    mode: str
    dominant_colors: list[Annotated[str, Field(pattern=r"^#[0-9a-f]{6}$")]]
    phash: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class AudioAnalysisOut(BaseModel):
    model_config = examples(
        {
            "format": "WAV",
            "duration_s": 2.831,
            "sample_rate": 22050,
            "channels": 1,
            "loudness_dbfs": -21.25,
            "peak_dbfs": -2.47,
            "silence_ratio": 0.1986,
            "transcript": "i really love this wonderful teapot",
            "language": "en",
            "sentiment": {"label": "positive", "score": 0.8316},
        }
    )

    format: Literal["WAV", "FLAC", "OGG"]
    duration_s: float
    sample_rate: int
    channels: int
    loudness_dbfs: float
    peak_dbfs: float
    silence_ratio: Annotated[float, Field(ge=0, le=1)]
    transcript: str
    language: str | None
    sentiment: SentimentOut | None


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY)]
    limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 10
    category: Annotated[str | None, StringConstraints(min_length=1, max_length=200)] = None
    min_price: Annotated[int | None, Field(ge=0, le=10**12)] = None
    max_price: Annotated[int | None, Field(ge=0, le=10**12)] = None


class SearchHitOut(BaseModel):
    product_id: UUID
    name: str
    score: float


class SearchOut(BaseModel):
    model_config = examples(
        {
            "items": [
                {
                    "product_id": "0b0e7e8a-3c1f-4a55-9a4e-6a3c9a0e2f11",
                    "name": "Waterproof hiking boots",
                    "score": 0.61,
                }
            ]
        }
    )

    items: list[SearchHitOut]


class RecommendationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 5


class RecommendationOut(BaseModel):
    product_id: UUID
    score: float
    reason: Literal["bought_together", "similar"]


class RecommendationsOut(BaseModel):
    model_config = examples(
        {
            "items": [
                {
                    "product_id": "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    "score": 0.42,
                    "reason": "bought_together",
                },
                {
                    "product_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                    "score": 0.57,
                    "reason": "similar",
                },
            ]
        }
    )

    items: list[RecommendationOut]


class ChatIn(Strict):
    model_config = examples({"message": "I need boots for hiking in the rain"})

    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE)]
    conversation_id: UUID | None = None


class ChatOut(BaseModel):
    model_config = examples(
        {
            "reply": "From our catalog: Waterproof hiking boots (EUR 129.00).",
            "conversation_id": "5c3e1f9a-7f1e-4c2b-8a3f-1d2e3f4a5b6c",
            "products": ["0b0e7e8a-3c1f-4a55-9a4e-6a3c9a0e2f11"],
            "source": "catalog",
        }
    )

    reply: str
    conversation_id: UUID
    products: list[UUID]
    # Who wrote the reply: the language model, or the template over the retrieved products.
    source: Literal["llm", "catalog"]
