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
