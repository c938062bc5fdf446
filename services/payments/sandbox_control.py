"""The sandbox's control: settle a payment the sandbox keeps waiting, by its own signed webhook;
or tell the sandbox to fail every charge for a while (a provider outage, for a game day).

    python -m services.payments.sandbox_control --payment ID --outcome succeeded|failed
    python -m services.payments.sandbox_control --outage SECONDS    (0 ends it)

`tok_timeout` charges and never answers; `tok_threeDSecure2Required` waits for a buyer who never
acts. The reconciler settles such payments by itself in time; this settles one now, as the
provider would: the sandbox's books record the outcome, then the sandbox posts the event Stripe
would send (`payment_intent.succeeded` or `payment_intent.payment_failed`, signed with the
webhook secret, `Stripe-Signature: t=…,v1=…`) to the webhook URL, through NGINX by default.
(`make sandbox-settle ID=… OUTCOME=…` runs it with the stack's settings.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import sys
import time
import uuid
from typing import Any, Literal

import aiohttp
import asyncpg
import orjson
from redis.asyncio import Redis

from services.payments import repository
from services.payments.providers import Outcome, SandboxProvider
from services.payments.settings import PaymentsSettings

# What a payment the operator fails is marked with: the platform gave up waiting.
GAVE_UP = "processing_error"


def sign(payload: bytes, secret: str, at: int | None = None) -> str:
    """The `Stripe-Signature` header of `payload`: `t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<payload>" keyed with the webhook secret>`."""
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def intent_event(payment: asyncpg.Record, outcome: str) -> dict[str, Any]:
    """The Stripe event about the payment's PaymentIntent that settles it with `outcome`."""
    intent: dict[str, Any] = {
        "id": payment["provider_ref"] or f"pi_sandbox_{payment['id'].hex}",
        "object": "payment_intent",
        "amount": payment["amount_cents"],
        "currency": payment["currency"].strip().lower(),
        "status": "succeeded" if outcome == "succeeded" else "requires_payment_method",
        "metadata": {"payment_id": str(payment["id"])},
    }
    if outcome == "failed":
        intent["last_payment_error"] = {"type": "api_error", "code": GAVE_UP}
    kind = "payment_intent.succeeded" if outcome == "succeeded" else "payment_intent.payment_failed"
    return {
        "id": f"evt_sandbox_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": intent},
    }


async def settle(
    settings: PaymentsSettings,
    payment_id: uuid.UUID,
    outcome: Literal["succeeded", "failed"],
    url: str,
) -> str:
    """Book `outcome` in the sandbox and post its webhook; what the webhook endpoint said."""
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": settings.database_schema}
    )
    redis = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout)
    try:
        payment = await repository.find_payment(conn, payment_id=payment_id)
        if payment is None:
            raise SystemExit(f"no payment {payment_id}")
        if payment["provider"] != "sandbox":
            raise SystemExit(f"payment {payment_id} went to {payment['provider']}, not the sandbox")
        if payment["status"] != "processing":
            raise SystemExit(f"payment {payment_id} is {payment['status']}: nothing to settle")
        sandbox = SandboxProvider(redis, prefix=settings.redis_key_prefix)
        booked = Outcome(
            outcome,
            payment["provider_ref"],
            None if outcome == "succeeded" else GAVE_UP,
            payment["amount_cents"],
            payment["currency"].strip(),
        )
        await sandbox.settle(str(payment["id"]), booked)
        body = orjson.dumps(intent_event(payment, outcome))
        headers = {
            "Stripe-Signature": sign(body, settings.webhook_secret()),
            "Content-Type": "application/json",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=headers) as response,
        ):
            answer = await response.text()
            if response.status != 200:
                raise SystemExit(f"the webhook was refused: {response.status} {answer}")
            return answer
    finally:
        await conn.close()
        await redis.aclose()


async def outage(settings: PaymentsSettings, seconds: float) -> None:
    """Fail every sandbox charge for `seconds` (0 ends the outage)."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout)
    try:
        await SandboxProvider(redis, prefix=settings.redis_key_prefix).set_outage(seconds)
    finally:
        await redis.aclose()


def main() -> None:
    """Parse arguments and settle the payment or start or end an outage."""
    settings = PaymentsSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--payment", type=uuid.UUID)
    what.add_argument("--outage", type=float, metavar="SECONDS")
    parser.add_argument("--outcome", choices=["succeeded", "failed"])
    parser.add_argument("--url", default=f"{settings.public_url}/api/payments/webhooks/sandbox")
    args = parser.parse_args()
    if args.outage is not None:
        asyncio.run(outage(settings, args.outage))
        print(
            f"sandbox: every charge fails for {args.outage:g} s"
            if args.outage
            else "sandbox: outage over"
        )
        sys.exit(0)
    if args.outcome is None:
        parser.error("--payment needs --outcome")
    answer = asyncio.run(settle(settings, args.payment, args.outcome, args.url))
    print(f"payment {args.payment}: {args.outcome} sent by the sandbox's webhook ({answer})")
    sys.exit(0)


if __name__ == "__main__":
    main()
