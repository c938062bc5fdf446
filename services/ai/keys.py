"""Typed application keys of the AI worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from chassis.messaging import ClaimCheck
from services.ai.catalog.service import IndexMetrics, LiveIndex
from services.ai.embeddings import Embedder
from services.ai.pools import ModelPool
from services.ai.recommendations.service import Trainer
from services.ai.settings import AiSettings

AI_SETTINGS = web.AppKey("ai_settings", AiSettings)
# The text models' and the speech model's processes, and the threads of the image work.
TEXT = web.AppKey("text", ModelPool)
SPEECH = web.AppKey("speech", ModelPool)
WORK = web.AppKey("work", ThreadPoolExecutor)
CLAIMS = web.AppKey("claims", ClaimCheck)
# The embedding model behind its batcher; the search index; the co-purchase model's trainer.
EMBEDDER = web.AppKey("embedder", Embedder)
INDEX = web.AppKey("index", LiveIndex)
INDEX_METRICS = web.AppKey("index_metrics", IndexMetrics)
TRAINER = web.AppKey("trainer", Trainer)
