"""The Stripe adapter against a local server that speaks Stripe's wire format."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from services.payments.keys import PAYMENTS_SETTINGS
from services.payments.providers import Charge, GuardedProvider, ProviderUnavailable
from services.payments.stripe import StripeProvider
from tests.factories import create_product, pay, place_order, register
from tests.fake_stripe import SECRET_KEY
from tests.faults import eventually
from tests.payments_support import is_, ledger_sum, payment_status


@pytest.fixture
async def stripe_worker(make_stripe_worker):
    return await make_stripe_worker()


async def test_stripe_checkout_refund_and_decline(client, stripe_worker, stripe, admin_account, db):
    assert stripe_worker[PAYMENTS_SETTINGS].provider == "stripe"
    product = await create_product(client, admin_account, price_cents=4200, currency="EUR")
    customer = await register(client)
    order = await place_order(client, customer, product)
    stripe.outages = 2  # the first two calls fail before Stripe executes them
    status, payment = await pay(client, customer, order["id"])
    assert (status, payment["status"]) == (200, "succeeded"), payment
    [intent] = [i for i in stripe.intents.values() if i["metadata"]["payment_id"] == payment["id"]]
    assert (intent["amount"], intent["currency"]) == (4200, "eur")
    assert intent["metadata"]["order_id"] == order["id"]
    assert stripe.requests[payment["id"]] == 3  # our payment id is the idempotency key
    refund = await client.post(
        f"/api/payments/{payment['id']}/refunds",
        json={"amount_cents": 200},
        headers={**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"},
    )
    assert refund.status == 202
    await eventually(lambda: is_(payment_status(db, payment["id"]), "partially_refunded"))
    [stripe_refund] = stripe.refunds.values()
    assert (stripe_refund["payment_intent"], stripe_refund["amount"]) == (intent["id"], 200)
    assert await ledger_sum(db) == 0

    declined = await place_order(client, customer, product)
    status, failed = await pay(client, customer, declined["id"], "tok_insufficientFunds")
    assert (status, failed["status"], failed["failure_code"]) == (
        200,
        "failed",
        "insufficient_funds",
    )
    unknown = await place_order(client, customer, product)
    status, failed = await pay(client, customer, unknown["id"], "tok_bogus")
    assert (failed["status"], failed["failure_code"]) == ("failed", "resource_missing")


async def test_the_circuit_opens_after_repeated_failures_and_calls_fail_fast(stripe):
    stripe.outages = 100
    async with aiohttp.ClientSession() as session:
        client = StripeProvider(session, base_url=stripe.url, secret_key=SECRET_KEY)
        guarded = GuardedProvider(
            client, timeout=1.0, attempts=1, breaker_threshold=3, breaker_reset=60
        )
        charge = Charge("pay-1", 100, "EUR", "tok_visa", {})
        for _ in range(3):
            with pytest.raises(ProviderUnavailable, match="HTTP 503"):
                await guarded.charge(charge)
        seen = stripe.requests["pay-1"]
        assert seen == 3
        with pytest.raises(ProviderUnavailable, match="circuit open"):
            await guarded.charge(charge)
        assert stripe.requests["pay-1"] == seen
