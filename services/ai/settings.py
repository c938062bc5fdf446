"""Settings of the AI worker."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from chassis.settings import ServiceSettings


class AiSettings(ServiceSettings):
    """The worker's settings: the chassis' plus its models and how much work it takes at once."""

    uses_jwt: ClassVar[bool] = False

    service_name: str = "ai"
    http_port: int = Field(8301, ge=0, le=65535)
    metrics_port: int = Field(9301, ge=0, le=65535)
    # Requests taken from the broker at once and handled at once (each RPC method); threads
    # doing image work (Pillow and numpy release the GIL).
    ai_prefetch: int = Field(4, ge=1)
    ai_threads: int = Field(2, ge=1)
    # Processes analysing text (each holds the text models: about 0.6 GB with every language)
    # and transcribing speech (each holds its model, about 40 MB, and one recording).
    ai_text_processes: int = Field(1, ge=1)
    ai_speech_processes: int = Field(1, ge=1)
    # The languages the detector tells apart (ISO 639-1); fewer load faster and take less memory.
    ai_languages: list[str] = [
        "en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da",
        "fi", "cs", "ro", "hu", "tr", "ru", "uk", "ar", "zh", "ja",
    ]  # fmt: skip
