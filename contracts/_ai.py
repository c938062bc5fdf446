"""The AI worker's RPCs (exchange `relais.rpc`, routing key = the request's type)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


# Media files the routes accept (bytes of the file itself).
MAX_MEDIA = 10 * 1024 * 1024
# The most a request carries in its message body; a bigger file waits in Redis under a claim
# key the message carries instead (a claim check). 64 KiB is 87 KiB once in base64: the whole
# message stays within one AMQP frame (RabbitMQ's frame_max, 128 KiB).
INLINE_MEDIA_MAX = 64 * 1024
MAX_AUDIO_SECONDS = 60.0


class Media(BaseModel):
    """A media file as an RPC carries it: its bytes inline (at most `INLINE_MEDIA_MAX`), or the
    key they wait under in Redis (`claim`), exactly one of the two."""

    # Bytes are base64 in the JSON body.
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    size: Annotated[int, Field(ge=0, le=MAX_MEDIA)]
    data: Annotated[bytes | None, Field(max_length=INLINE_MEDIA_MAX)] = None
    claim: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Media:
        if (self.data is None) == (self.claim is None):
            raise ValueError("a media file travels inline (data) or by claim, exactly one")
        return self


class ImageAnalysisRequest(Contract):
    """Analyze an image: its format, size, dominant colours and perceptual hash."""

    type: Literal["ai.image.analyze"] = "ai.image.analyze"
    version: Literal[1] = 1
    media: Media


class ImageAnalysis(Contract):
    """What the worker found in an image."""

    type: Literal["ai.image.analysis"] = "ai.image.analysis"
    version: Literal[1] = 1
    format: str  # Pillow's name: PNG, JPEG, GIF, WEBP…
    width: int
    height: int
    mode: str  # Pillow's mode: RGB, RGBA, L, P…
    dominant_colors: list[str]  # "#rrggbb", the most frequent first
    phash: str  # 64-bit perceptual hash, 16 hex digits


class AudioAnalysisRequest(Contract):
    """Analyze a recording: its signal, a transcript and the transcript's text analysis."""

    type: Literal["ai.audio.analyze"] = "ai.audio.analyze"
    version: Literal[1] = 1
    media: Media


class AudioAnalysis(Contract):
    """What the worker found in a recording (levels in dBFS, floored at -120 for silence)."""

    type: Literal["ai.audio.analysis"] = "ai.audio.analysis"
    version: Literal[1] = 1
    format: Literal["WAV", "FLAC", "OGG"]
    duration_s: float
    sample_rate: int
    channels: int
    loudness_dbfs: float  # RMS level of the whole recording
    peak_dbfs: float
    silence_ratio: float  # share of 20 ms frames quieter than -50 dBFS
    transcript: str  # English speech recognition; "" when nothing was recognised
    language: str | None  # the transcript's, as the text analysis detects it
    sentiment: Sentiment | None  # the transcript's; None when it is empty
