"""A client of Stripe's HTTP API: form-encoded PaymentIntents and Refunds, idempotent by key."""

from __future__ import annotations

from typing import Any

import aiohttp

from services.payments.providers import Charge, Outcome, ProviderUnavailable, Refund

API_VERSION = "2024-06-20"
# Stripe answers these when a retry with the same key may succeed.
TRANSIENT = frozenset({409, 429, 500, 502, 503, 504})


class StripeProvider:
    """PaymentIntents confirmed at creation with a card token; refunds against the intent."""

    name = "stripe"

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, secret_key: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.secret_key = secret_key

    async def _post(self, path: str, form: dict[str, str], key: str) -> tuple[int, dict[str, Any]]:
        headers = {
            "Authorization": f"Bearer {self.secret_key}",
            "Idempotency-Key": key,
            "Stripe-Version": API_VERSION,
        }
        try:
            async with self.session.post(
                self.base_url + path, data=form, headers=headers
            ) as response:
                if response.status in TRANSIENT:
                    raise ProviderUnavailable(f"stripe {path}: HTTP {response.status}")
                body: dict[str, Any] = await response.json(content_type=None)
                return response.status, body
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ProviderUnavailable(f"stripe {path}: {exc!r}") from exc

    async def charge(self, charge: Charge) -> Outcome:
        form = {
            "amount": str(charge.amount_cents),
            "currency": charge.currency.lower(),
            "confirm": "true",
            "payment_method_types[0]": "card",
            "payment_method_data[type]": "card",
            "payment_method_data[card][token]": charge.payment_method,
            **{f"metadata[{name}]": value for name, value in charge.metadata.items()},
        }
        status, body = await self._post("/v1/payment_intents", form, charge.key)
        if status == 200:
            return _intent_outcome(body)
        error = body.get("error", {})
        intent = error.get("payment_intent") or {}
        if status == 402 or error.get("type") == "card_error":
            code = error.get("decline_code") or error.get("code") or "card_error"
            return Outcome("failed", intent.get("id"), code)
        if status == 400:  # a request Stripe will never accept, e.g. an unknown token
            return Outcome("failed", intent.get("id"), error.get("code") or "invalid_request")
        raise ProviderUnavailable(f"stripe charge: HTTP {status} {error.get('message', '')}")

    async def refund(self, refund: Refund) -> Outcome:
        form = {"payment_intent": refund.provider_ref, "amount": str(refund.amount_cents)}
        status, body = await self._post("/v1/refunds", form, refund.key)
        if status == 200:
            state = body.get("status")
            if state == "succeeded":
                return Outcome("succeeded", body.get("id"))
            if state in ("failed", "canceled"):
                return Outcome("failed", body.get("id"), body.get("failure_reason") or state)
            return Outcome("processing", body.get("id"))
        error = body.get("error", {})
        if status in (400, 402):
            return Outcome("failed", None, error.get("code") or "refund_refused")
        raise ProviderUnavailable(f"stripe refund: HTTP {status} {error.get('message', '')}")


def _intent_outcome(intent: dict[str, Any]) -> Outcome:
    state = intent.get("status")
    if state == "succeeded":
        return Outcome("succeeded", intent.get("id"))
    if state in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        code = error.get("decline_code") or error.get("code") or "payment_failed"
        return Outcome("failed", intent.get("id"), code)
    return Outcome("processing", intent.get("id"))  # processing, requires_action: a webhook ends it
