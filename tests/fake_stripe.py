"""A local server speaking Stripe's wire format: form-encoded bodies, Bearer keys, idempotency.

Only the parts the worker uses: `POST /v1/payment_intents` (confirmed at creation with a card
token; `tok_threeDSecure2Required` leaves it waiting for the buyer), retrieving, searching by
metadata and cancelling intents, and creating, retrieving and listing refunds (`refund_status`
says whether new refunds succeed at once or stay pending). Like Stripe, a key replays its first
response, the same key with other parameters is refused, and a request that fails before
executing is not remembered.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from aiohttp import web

SECRET_KEY = "sk_test_relais"


class FakeStripe:
    """Records every intent and refund it creates; `outages` answers 503 that many times first."""

    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.outages = 0
        self.refund_status = "succeeded"
        self._replies: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._intents)
        app.router.add_get("/v1/payment_intents/search", self._search_intents)
        app.router.add_get("/v1/payment_intents/{id}", self._intent)
        app.router.add_post("/v1/payment_intents/{id}/cancel", self._cancel_intent)
        app.router.add_post("/v1/refunds", self._refunds)
        app.router.add_get("/v1/refunds", self._list_refunds)
        app.router.add_get("/v1/refunds/{id}", self._refund)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {SECRET_KEY}"

    async def _intent(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if not self._authorized(request) or intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent")
        return web.json_response(intent)

    async def _search_intents(self, request: web.Request) -> web.Response:
        # Only the query the worker sends: metadata['payment_id']:'<id>'
        wanted = request.query.get("query", "").split(":", 1)[-1].strip("'")
        found = [i for i in self.intents.values() if i["metadata"].get("payment_id") == wanted]
        return web.json_response({"object": "search_result", "data": found})

    async def _cancel_intent(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent")
        if intent["status"] not in ("requires_action", "requires_payment_method", "processing"):
            return _error(400, "invalid_request_error", f"It is {intent['status']}")
        intent["status"] = "canceled"
        return web.json_response(intent)

    async def _refund(self, request: web.Request) -> web.Response:
        refund = self.refunds.get(request.match_info["id"])
        if refund is None:
            return _error(404, "invalid_request_error", "No such refund")
        return web.json_response(refund)

    async def _list_refunds(self, request: web.Request) -> web.Response:
        intent = request.query.get("payment_intent")
        found = [r for r in self.refunds.values() if r["payment_intent"] == intent]
        return web.json_response({"object": "list", "data": found})

    def settle_refunds(self, status: str = "succeeded") -> list[dict[str, Any]]:
        """Settle every pending refund, as Stripe does some time later; the refunds settled."""
        settled = [r for r in self.refunds.values() if r["status"] == "pending"]
        for refund in settled:
            refund["status"] = status
        return settled

    async def _idempotent(self, request: web.Request, create: Any) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        form = dict(await request.post())
        key = request.headers.get("Idempotency-Key", "")
        self.requests[key] += 1
        if self.outages:
            self.outages -= 1
            return _error(503, "api_error", "Service unavailable")
        if key in self._replies:
            params, status, body = self._replies[key]
            if params != form:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters",
                )
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        status, body = create(form)
        self._replies[key] = (form, status, body)
        return web.json_response(body, status=status)

    async def _intents(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, self._create_intent)

    async def _refunds(self, request: web.Request) -> web.Response:
        return await self._idempotent(request, self._create_refund)

    def _create_intent(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        token = form.get("payment_method_data[card][token]")
        intent = {
            "id": f"pi_{uuid.uuid4().hex[:24]}",
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "status": "succeeded",
        }
        self.intents[intent["id"]] = intent
        decline = {
            "tok_chargeDeclined": "generic_decline",
            "tok_insufficientFunds": "insufficient_funds",
        }
        if token in decline:
            intent["status"] = "requires_payment_method"
            error = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": decline[token],
                "message": "Your card was declined.",
                "payment_intent": intent,
            }
            intent["last_payment_error"] = {k: v for k, v in error.items() if k != "payment_intent"}
            return 402, {"error": error}
        if token == "tok_threeDSecure2Required":
            intent["status"] = "requires_action"
            return 200, intent
        if token != "tok_visa":
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such token: '{token}'",
                }
            }
        return 200, intent

    def _create_refund(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        refund = {
            "id": f"re_{uuid.uuid4().hex[:24]}",
            "object": "refund",
            "status": self.refund_status,
            "amount": int(form["amount"]),
            "payment_intent": intent["id"],
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
        }
        self.refunds[refund["id"]] = refund
        return 200, refund


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)
