"""Money under adversity: forged or mismatched webhooks, the unpaid-order sweep racing a payment,
a charge that succeeds for an order no longer payable, and payments and refunds left in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict

import orjson
import pytest
from redis.asyncio import Redis

from chassis.data import DB_POOL
from chassis.messaging import derived_message_id
from chassis.telemetry import METRICS
from services.core.keys import PRODUCT_CACHE
from services.core.orders import repository as orders_repository
from services.core.orders.service import release_unpaid_orders
from services.payments.providers import Outcome
from tests.conftest import REDIS_URL
from tests.factories import create_product, pay, place_order, register
from tests.faults import eventually
from tests.payments_support import (
    intent_event,
    is_,
    ledger_sum,
    order_status,
    payment_status,
    provider_event,
    send_webhook,
    signature,
)


async def checkout(client, admin_account, payment_method: str, *, wait: int | None = 10):
    """A new product, a new customer, an order of it, and a first payment: (customer, order,
    payment)."""
    product = await create_product(client, admin_account, price_cents=2500)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"], payment_method, wait=wait)
    return customer, order, payment


async def webhook_handled(db, provider: str, event_id: str) -> bool:
    """Whether the worker has finished with a forwarded webhook."""
    message_id = derived_message_id("webhook", provider, event_id)
    return bool(
        await db.fetchval(
            "SELECT 1 FROM payments.processed_messages WHERE message_id = $1", message_id
        )
    )


async def deliver(webhooks, db, payload: bytes, event_id: str, provider: str = "sandbox") -> None:
    """Send a signed webhook and wait until the worker has dealt with it."""
    response = await send_webhook(webhooks, payload, signature(payload), provider=provider)
    assert response.status == 200, await response.text()
    await eventually(lambda: webhook_handled(db, provider, event_id))


def success_event(payment: dict, **changes) -> tuple[str, bytes]:
    event_id = f"evt_{uuid.uuid4().hex}"
    fields = {"amount": payment["amount_cents"], "currency": payment["currency"].lower()}
    return event_id, intent_event(
        event_id, "payment_intent.succeeded", payment["id"], **{**fields, **changes}
    )


async def test_the_sweep_never_cancels_an_order_whose_payment_started_meanwhile(
    client, admin_account, db, monkeypatch
):
    product = await create_product(client, admin_account, stock=3)
    customer = await register(client)
    order = await place_order(client, customer, product)
    selected = orders_repository.unpaid_orders_past_hold

    async def payment_commits_in_between(conn, **kwargs):
        # The sweep has chosen its orders (in its snapshot, none has a payment in progress)
        # when a payment of one of them commits: `start_payment` locks the order only while it
        # runs and does not change the order row.
        rows = await selected(conn, **kwargs)
        # (its foreign key would wait for the sweep's lock, which in the real race it precedes)
        async with db.transaction():
            await db.execute("SET LOCAL session_replication_role = replica")
            await db.execute(
                """INSERT INTO payments (order_id, user_id, amount_cents, currency, status,
                                         payment_method)
                   SELECT id, user_id, total_cents, currency, 'processing', 'tok_visa'
                   FROM orders WHERE id = $1::uuid""",
                order["id"],
            )
        return rows

    monkeypatch.setattr(orders_repository, "unpaid_orders_past_hold", payment_commits_in_between)
    await asyncio.sleep(0.05)
    await release_unpaid_orders(
        pool=client.app[DB_POOL], cache=client.app[PRODUCT_CACHE], hold_seconds=0.01
    )
    assert await order_status(db, order["id"]) == "pending_payment"
    stock = await db.fetchval("SELECT stock FROM products WHERE id = $1::uuid", product["id"])
    assert stock == 2  # still held for the payment in flight


@pytest.mark.usefixtures("worker")
async def test_a_forged_success_never_moves_a_failed_payment(webhooks, client, admin_account, db):
    _, order, payment = await checkout(client, admin_account, "tok_chargeDeclined")
    assert payment["status"] == "failed"
    event_id, payload = success_event(payment)  # right amount and currency, but a lie
    await deliver(webhooks, db, payload, event_id)
    assert await payment_status(db, payment["id"]) == "failed"
    assert await order_status(db, order["id"]) == "payment_failed"
    worker_view = "SELECT status FROM payments.payments WHERE id = $1::uuid"
    assert await db.fetchval(worker_view, payment["id"]) == "failed"
    assert await ledger_sum(db) == 0


@pytest.mark.usefixtures("worker")
async def test_a_success_with_another_amount_currency_or_provider_changes_nothing(
    webhooks, client, admin_account, db
):
    _, order, payment = await checkout(client, admin_account, "tok_threeDSecure2Required", wait=1)
    assert payment["status"] == "processing"  # waiting for the buyer
    for changes, provider in (
        ({"amount": payment["amount_cents"] + 1}, "sandbox"),
        ({"currency": "usd"}, "sandbox"),
        ({"amount": None}, "sandbox"),
        ({}, "stripe"),  # the payment went to the sandbox
    ):
        event_id, payload = success_event(payment, **changes)
        await deliver(webhooks, db, payload, event_id, provider=provider)
        assert await payment_status(db, payment["id"]) == "processing", changes
    # the provider's own success, with the payment's amount and currency, is applied
    event_id, payload = success_event(payment)
    await deliver(webhooks, db, payload, event_id)
    await eventually(lambda: is_(order_status(db, order["id"]), "paid"))
    assert await payment_status(db, payment["id"]) == "succeeded"


@pytest.mark.usefixtures("worker")
async def test_a_charge_that_succeeds_for_an_order_paid_otherwise_is_refunded(
    webhooks, client, admin_account, db, redis_prefix
):
    customer, order, first = await checkout(client, admin_account, "tok_chargeDeclined")
    assert first["status"] == "failed"
    _, second = await pay(client, customer, order["id"], "tok_visa")
    assert (second["status"], await order_status(db, order["id"])) == ("succeeded", "paid")
    # The provider later reports the first charge captured after all (its books say so now).
    redis = Redis.from_url(REDIS_URL)
    try:
        captured = Outcome(
            "succeeded", f"pi_sandbox_{first['id'].replace('-', '')}", None, 2500, "EUR"
        )
        entry = {"outcome": asdict(captured), "metadata": {"payment_id": first["id"]}}
        await redis.hset(f"{redis_prefix}sandbox:charges", first["id"], orjson.dumps(entry))
    finally:
        await redis.aclose()
    event_id, payload = success_event(first)
    await deliver(webhooks, db, payload, event_id)
    # confirmed with the provider, recorded, then refunded in full: the order keeps its payment
    await eventually(lambda: is_(payment_status(db, first["id"]), "refunded"))
    assert await payment_status(db, second["id"]) == "succeeded"
    assert await order_status(db, order["id"]) == "paid"
    refund = await db.fetchrow("SELECT * FROM refunds WHERE payment_id = $1::uuid", first["id"])
    assert (refund["reason"], refund["amount_cents"], refund["status"]) == (
        "order_not_payable",
        2500,
        "succeeded",
    )
    assert await ledger_sum(db) == 0
    registry = client.app[METRICS].registry
    refunded = registry.get_sample_value(
        "relais_payments_auto_refunded_total", {"service": "core", "order_status": "paid"}
    )
    assert refunded == 1


async def test_a_charge_whose_answer_never_came_is_settled_by_the_reconciler(
    client, make_worker, admin_account, db
):
    await make_worker(reconcile_interval=0.2, reconcile_after=2.0)
    _, order, payment = await checkout(client, admin_account, "tok_timeout", wait=1)
    assert payment["status"] == "processing"  # charged, but the answer never comes
    await eventually(lambda: is_(order_status(db, order["id"]), "paid"), within=30)
    assert await payment_status(db, payment["id"]) == "succeeded"
    charges = await db.fetchval(
        """SELECT count(*) FROM payments.ledger_transactions
           WHERE payment_id = $1::uuid AND kind = 'charge'""",
        payment["id"],
    )
    assert charges == 1 and await ledger_sum(db) == 0


async def test_a_buyer_who_never_confirms_is_given_up_on_and_the_order_freed(
    client, make_worker, admin_account, db
):
    await make_worker(reconcile_interval=0.2, reconcile_after=0.5, payment_action_timeout=1.0)
    customer, order, payment = await checkout(
        client, admin_account, "tok_threeDSecure2Required", wait=1
    )
    assert payment["status"] == "processing"
    await eventually(lambda: is_(payment_status(db, payment["id"]), "failed"), within=30)
    assert await order_status(db, order["id"]) == "payment_failed"
    # nothing moved, and the customer may pay again
    _, again = await pay(client, customer, order["id"], "tok_visa")
    assert again["status"] == "succeeded"


async def test_stripe_refunds_left_pending_settle_by_webhook_or_reconciler(
    webhooks, client, make_stripe_worker, stripe, admin_account, db
):
    await make_stripe_worker(reconcile_interval=0.2, reconcile_after=1.5)
    _, _, payment = await checkout(client, admin_account, "tok_visa")
    assert payment["status"] == "succeeded"
    stripe.refund_status = "pending"

    async def refund(amount: int) -> str:
        response = await client.post(
            f"/api/payments/{payment['id']}/refunds",
            json={"amount_cents": amount},
            headers={**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"},
        )
        assert response.status == 202
        refund_id: str = (await response.json())["id"]
        await eventually(
            lambda: db.fetchval(
                "SELECT provider_ref FROM payments.refunds WHERE id = $1::uuid", refund_id
            )
        )
        return refund_id

    first = await refund(500)
    [pending] = stripe.settle_refunds()  # Stripe settles it later and says so
    event_id = f"evt_{uuid.uuid4().hex}"
    await deliver(
        webhooks, db, provider_event(event_id, "refund.updated", pending), event_id, "stripe"
    )
    refund_state = "SELECT status FROM refunds WHERE id = $1::uuid"
    await eventually(lambda: is_(db.fetchval(refund_state, first), "succeeded"))
    assert await payment_status(db, payment["id"]) == "partially_refunded"
    # no webhook this time: the reconciler asks Stripe
    second = await refund(700)
    stripe.settle_refunds()
    await eventually(lambda: is_(db.fetchval(refund_state, second), "succeeded"), within=30)
    refunded = await db.fetchval(
        "SELECT refunded_cents FROM payments WHERE id = $1::uuid", payment["id"]
    )
    assert refunded == 1200 and await ledger_sum(db) == 0


async def test_stripe_intents_waiting_for_the_buyer_are_cancelled(
    client, make_stripe_worker, stripe, admin_account, db
):
    await make_stripe_worker(
        reconcile_interval=0.2, reconcile_after=0.5, payment_action_timeout=1.0
    )
    _, order, payment = await checkout(client, admin_account, "tok_threeDSecure2Required", wait=1)
    assert payment["status"] == "processing"
    await eventually(lambda: is_(payment_status(db, payment["id"]), "failed"), within=30)
    [intent] = stripe.intents.values()
    assert intent["status"] == "canceled"
    assert await order_status(db, order["id"]) == "payment_failed"
