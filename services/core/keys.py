"""Typed application keys of the core service."""

from __future__ import annotations

from aiohttp import web

from chassis.data import TieredCache
from chassis.messaging import RpcClient
from services.core.ai.chat import Conversations, LanguageModel
from services.core.auth.service import Passwords
from services.core.checkout.waiting import SettlementWaiters
from services.core.mail import Mailer
from services.core.metrics import CheckoutMetrics
from services.core.settings import CoreSettings

CORE_SETTINGS = web.AppKey("core_settings", CoreSettings)
PRODUCT_CACHE = web.AppKey("product_cache", TieredCache)
PASSWORDS = web.AppKey("passwords", Passwords)
SETTLEMENTS = web.AppKey("settlements", SettlementWaiters)
CHECKOUT_METRICS = web.AppKey("checkout_metrics", CheckoutMetrics)
RPC_CLIENT = web.AppKey("rpc_client", RpcClient)
# The shopping assistant's conversations, and its language model (None: the template answers).
CONVERSATIONS = web.AppKey("conversations", Conversations)
LANGUAGE_MODEL = web.AppKey[LanguageModel | None]("language_model")
# The e-mail port's adapter (SMTP, or the development outbox).
MAILER = web.AppKey("mailer", Mailer)
