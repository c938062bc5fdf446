"""Typed application keys of the payments worker."""

from __future__ import annotations

from aiohttp import web

from services.payments.providers import Provider
from services.payments.settings import PaymentsSettings

PAYMENTS_SETTINGS = web.AppKey("payments_settings", PaymentsSettings)
PROVIDER = web.AppKey("provider", Provider)
WEBHOOK_SECRET = web.AppKey("webhook_secret", str)
