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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.secret_key}", "Stripe-Version": API_VERSION}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            async with self.session.request(
                method, self.base_url + path, data=form, params=params, headers=headers
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
            **_metadata(charge.metadata),
        }
        status, body = await self._call("POST", "/v1/payment_intents", form=form, key=charge.key)
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
        form = {
            "payment_intent": refund.provider_ref,
            "amount": str(refund.amount_cents),
            **_metadata(refund.metadata),
        }
        status, body = await self._call("POST", "/v1/refunds", form=form, key=refund.key)
        if status == 200:
            return _refund_outcome(body)
        error = body.get("error", {})
        if status in (400, 402):
            return Outcome("failed", None, error.get("code") or "refund_refused")
        raise ProviderUnavailable(f"stripe refund: HTTP {status} {error.get('message', '')}")

    async def find_charge(self, key: str, provider_ref: str | None) -> Outcome | None:
        if provider_ref:
            status, body = await self._call("GET", f"/v1/payment_intents/{provider_ref}")
            return _intent_outcome(body) if status == 200 else None
        # No answer ever came back: look the intent up by the payment id it carries.
        query = f"metadata['payment_id']:'{key}'"
        status, body = await self._call(
            "GET", "/v1/payment_intents/search", params={"query": query}
        )
        found = body.get("data") or [] if status == 200 else []
        return _intent_outcome(found[0]) if found else None

    async def cancel_charge(self, key: str, provider_ref: str | None) -> Outcome:
        known = await self.find_charge(key, provider_ref)
        if known is None or known.status != "processing" or known.provider_ref is None:
            return known or Outcome("failed", provider_ref, "canceled")
        status, body = await self._call(
            "POST", f"/v1/payment_intents/{known.provider_ref}/cancel", form={}
        )
        if status == 200:
            return _intent_outcome(body)
        return await self.find_charge(key, known.provider_ref) or known  # it settled meanwhile

    async def find_refund(
        self, key: str, provider_ref: str | None, charge_ref: str
    ) -> Outcome | None:
        if provider_ref:
            status, body = await self._call("GET", f"/v1/refunds/{provider_ref}")
            return _refund_outcome(body) if status == 200 else None
        status, body = await self._call(
            "GET", "/v1/refunds", params={"payment_intent": charge_ref, "limit": "100"}
        )
        refunds = body.get("data") or [] if status == 200 else []
        mine = [item for item in refunds if (item.get("metadata") or {}).get("refund_id") == key]
        return _refund_outcome(mine[0]) if mine else None


def _metadata(values: dict[str, str]) -> dict[str, str]:
    return {f"metadata[{name}]": value for name, value in values.items()}


def _intent_outcome(intent: dict[str, Any]) -> Outcome:
    state, ref = intent.get("status"), intent.get("id")
    amount, currency = intent.get("amount"), _currency(intent)
    if state == "succeeded":
        return Outcome("succeeded", ref, None, amount, currency)
    if state in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        default = "canceled" if state == "canceled" else "payment_failed"
        code = error.get("decline_code") or error.get("code") or default
        return Outcome("failed", ref, code, amount, currency)
    # processing, requires_action: a webhook or the reconciler ends it
    return Outcome("processing", ref, None, amount, currency)


def _refund_outcome(refund: dict[str, Any]) -> Outcome:
    state, ref, amount = refund.get("status"), refund.get("id"), refund.get("amount")
    if state == "succeeded":
        return Outcome("succeeded", ref, amount_cents=amount)
    if state in ("failed", "canceled"):
        return Outcome("failed", ref, refund.get("failure_reason") or state, amount_cents=amount)
    return Outcome("processing", ref, amount_cents=amount)  # pending, requires_action


def _currency(intent: dict[str, Any]) -> str | None:
    currency = intent.get("currency")
    return currency.upper() if isinstance(currency, str) else None
