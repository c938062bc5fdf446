"""Helpers for payment tests: signed webhooks, the sandbox's books, waiting for settlement."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from services.payments.providers import sandbox_books
from services.payments.sandbox_control import sign
from tests.conftest import REDIS_URL, WEBHOOK_SECRET


def signature(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A Stripe-Signature header for `payload` (the sandbox's own signing)."""
    return sign(payload, secret, at)


def provider_event(event_id: str, event_type: str, obj: dict[str, Any]) -> bytes:
    """A Stripe-style event about `obj` (a PaymentIntent, Charge or Refund)."""
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return orjson.dumps(body)


def intent_event(event_id: str, event_type: str, payment_id: str, **obj: Any) -> bytes:
    """A Stripe-style event about a PaymentIntent carrying our payment id in its metadata."""
    intent = {
        "id": f"pi_{payment_id[:8]}",
        "object": "payment_intent",
        "metadata": {"payment_id": payment_id},
        **obj,
    }
    return provider_event(event_id, event_type, intent)


async def send_webhook(
    payments: Any, payload: bytes, header: str, provider: str = "sandbox"
) -> Any:
    """POST a webhook to the payments service as the provider would."""
    return await payments.post(
        f"/api/payments/webhooks/{provider}",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


async def is_(awaitable: Awaitable[Any], expected: object) -> bool:
    """Whether an awaited value equals `expected` (for `eventually`)."""
    return await awaitable == expected


async def order_status(db: asyncpg.Connection, order_id: str) -> str:
    """An order's status."""
    status: str = await db.fetchval("SELECT status FROM orders WHERE id = $1::uuid", order_id)
    return status


async def payment_status(db: asyncpg.Connection, payment_id: str) -> str:
    """A payment's status as core records it."""
    status: str = await db.fetchval("SELECT status FROM payments WHERE id = $1::uuid", payment_id)
    return status


async def ledger_sum(db: asyncpg.Connection) -> int:
    """The sum of every ledger entry (zero when balanced)."""
    total = await db.fetchval("SELECT coalesce(sum(amount_cents), 0) FROM payments.ledger_entries")
    return int(total)


async def charge_count(db: asyncpg.Connection, payment_id: str) -> int:
    """Ledger charge transactions of a payment."""
    count = await db.fetchval(
        """SELECT count(*) FROM payments.ledger_transactions
           WHERE payment_id = $1::uuid AND kind = 'charge'""",
        payment_id,
    )
    return int(count)


async def provider_charges(redis_prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The sandbox provider's booked charges, grouped by the payment id in their metadata."""
    client = Redis.from_url(REDIS_URL)
    try:
        books = await sandbox_books(client, redis_prefix)
    finally:
        await client.aclose()
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in books:
        grouped[entry["metadata"]["payment_id"]].append(entry)
    return grouped
