"""HTTP views of webhook intake: providers post their events here, through NGINX."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.errors import NotFound
from chassis.http import ApiRoutes, Header, json_response
from services.payments.handlers import COMMAND_QUEUE
from services.payments.keys import PAYMENTS_SETTINGS, WEBHOOK_SECRET
from services.payments.webhooks import service
from services.payments.webhooks.schemas import ProviderEventIn, WebhookAck

routes = ApiRoutes("payments")


@routes.route(
    "POST",
    "/api/payments/webhooks/{provider}",
    summary="A payment provider's event, signed Stripe-style (t=…,v1=… HMAC-SHA256)",
    body=ProviderEventIn,
    headers={
        "Stripe-Signature": Header("t=<unix time>,v1=<hex HMAC-SHA256 of 't.body'>", required=True)
    },
    responses={200: WebhookAck, 400: None, 404: None, 413: None},
)
async def provider_webhook(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    if provider not in service.WEBHOOK_PROVIDERS:
        raise NotFound(f"No webhook for provider {provider!r}")
    payload = await request.read()
    service.verify_signature(
        payload,
        request.headers.get("Stripe-Signature"),
        secret=request.app[WEBHOOK_SECRET],
        tolerance=request.app[PAYMENTS_SETTINGS].webhook_tolerance_seconds,
    )
    event = service.provider_event(provider, payload)
    new = await service.accept_webhook(pool=request.app[DB_POOL], event=event, queue=COMMAND_QUEUE)
    return json_response({"received": True, "duplicate": not new})
