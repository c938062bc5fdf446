"""Typed application keys of the gateway."""

from __future__ import annotations

from aiohttp import web

from gateway.push.service import Hub
from gateway.settings import GatewaySettings

GATEWAY_SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
# The sockets this instance holds, by user, and the bindings that follow them.
HUB = web.AppKey("hub", Hub)
