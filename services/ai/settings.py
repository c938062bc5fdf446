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
    # The schema the worker owns, and core's, whose products it reads.
    database_schema: str = "ai"
    ai_catalog_schema: str = "core"
    # Embeddings: a request waits at most this long for others to share its batch; the most in
    # one batch; PyTorch's threads.
    ai_embed_window_ms: float = Field(4.0, ge=0)
    ai_embed_max_batch: int = Field(64, ge=1)
    ai_embed_threads: int = Field(2, ge=1)
    # How often the index compares itself with the catalog, and how far behind it may fall
    # before it catches up without waiting for events.
    ai_index_check_interval: float = Field(10.0, gt=0)
    ai_index_max_lag: float = Field(10.0, ge=0)
    # The co-purchase model: retrained this often, and as soon as this many new paid orders
    # arrive (but not twice within `ai_recommend_min_gap` seconds: at a busy shop's rate it would
    # otherwise train without pause); how many partners it keeps per product.
    ai_recommend_interval: float = Field(600.0, gt=0)
    ai_recommend_after_orders: int = Field(10, ge=1)
    ai_recommend_min_gap: float = Field(5.0, ge=0)
    ai_recommend_partners: int = Field(20, ge=1)
    ai_languages: list[str] = [
        "en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da",
        "fi", "cs", "ro", "hu", "tr", "ru", "uk", "ar", "zh", "ja",
    ]  # fmt: skip
