"""Provider webhooks as the payments service takes them: the signature, the provider's event
format, and each event handed once to the service's own command queue (through its outbox), where
`handlers.provider_event` acts on it."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from typing import Any

import asyncpg
import orjson

from chassis.errors import BadRequest
from chassis.http import nul_fields
from chassis.messaging import DEFAULT_EXCHANGE, derived_message_id, enqueue
from contracts import ProviderEvent
from services.payments.webhooks import repository

WEBHOOK_PROVIDERS = frozenset({"stripe", "sandbox"})


_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def verify_signature(
    payload: bytes, header: str | None, *, secret: str, tolerance: int, now: float | None = None
) -> None:
    """Check a Stripe-style `t=…,v1=…` signature over `"{t}.{payload}"`; 400 if it fails."""
    if not header:
        raise BadRequest("Missing Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):  # ASCII digits only, unlike isdigit()
            timestamp = int(value)
        elif name == "v1" and _SIGNATURE.fullmatch(value):  # what an HMAC-SHA256 looks like
            signatures.append(value.encode())
    if timestamp is None or not signatures:
        raise BadRequest("Malformed Stripe-Signature header")
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        raise BadRequest("Webhook timestamp is outside the tolerance")
    signed = str(timestamp).encode() + b"." + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise BadRequest("Webhook signature does not match")


def provider_event(provider: str, payload: bytes) -> ProviderEvent:
    """The contract a verified webhook body describes (Stripe's event format: a PaymentIntent,
    a Charge or a Refund as `data.object`); 400 if it is not an event."""
    try:
        event = orjson.loads(payload)
        obj = event["data"]["object"]
        event_id, event_type = event["id"], event["type"]
        if not (
            isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)
        ):
            raise TypeError("id, type and data.object have the wrong types")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadRequest(f"Not a provider event: {exc}") from exc
    if any(nul_fields(event)):
        raise BadRequest("Not a provider event: it holds NUL characters")
    metadata, error = (_mapping(obj.get(name)) for name in ("metadata", "last_payment_error"))
    kind = obj.get("object")
    # A PaymentIntent is the payment; a Charge or a Refund names its PaymentIntent.
    intent = obj.get("id") if kind == "payment_intent" else obj.get("payment_intent")
    currency = _text(obj.get("currency"))
    return ProviderEvent(
        provider=provider,
        event_id=event_id[:255],
        event_type=event_type[:100],
        payment_id=_uuid(metadata.get("payment_id")),
        provider_payment_id=_text(intent),
        failure_code=_text(error.get("decline_code") or error.get("code")),
        refund_id=_uuid(metadata.get("refund_id")) if kind == "refund" else None,
        provider_refund_id=_text(obj.get("id")) if kind == "refund" else None,
        amount_cents=_amount(obj.get("amount")),
        currency=currency.upper() if currency else None,
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value[:255] if isinstance(value, str) else None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _amount(value: object) -> int | None:
    # bool is an int to Python, not to JSON
    return value if type(value) is int and 0 < value <= 2**62 else None


async def accept_webhook(*, pool: asyncpg.Pool, event: ProviderEvent, queue: str) -> bool:
    """Queue a verified provider event once for this service's consumers (on `queue`, through
    the default exchange); whether it was new."""
    async with pool.acquire() as conn, conn.transaction():
        new = await repository.record_webhook(
            conn, provider=event.provider, event_id=event.event_id, event_type=event.event_type
        )
        if new:
            await enqueue(
                conn,
                event,
                exchange=DEFAULT_EXCHANGE,
                routing_key=queue,
                message_id=derived_message_id("webhook", event.provider, event.event_id),
            )
    return new
