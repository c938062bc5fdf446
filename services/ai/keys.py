"""Typed application keys of the AI worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from chassis.messaging import ClaimCheck
from services.ai.recognizer import Recognizer
from services.ai.settings import AiSettings
from services.ai.text import TextModels

AI_SETTINGS = web.AppKey("ai_settings", AiSettings)
MODELS = web.AppKey("models", TextModels)
WORK = web.AppKey("work", ThreadPoolExecutor)
SPEECH = web.AppKey("speech", Recognizer)
CLAIMS = web.AppKey("claims", ClaimCheck)
