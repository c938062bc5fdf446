"""Checkout against real PostgreSQL, Redis and RabbitMQ: core, the outbox and the worker."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import asyncpg
import pytest
from redis.asyncio import Redis

from chassis.data import DB_POOL
from chassis.messaging import COMMANDS, REASON_HEADER, dead_letter_queue
from chassis.telemetry import METRICS
from contracts import PaymentRefunded, PaymentSucceeded, settlement_outcome
from services.core.checkout.events import apply_event
from services.core.keys import CHECKOUT_METRICS, PRODUCT_CACHE
from services.core.orders.service import release_unpaid_orders
from services.payments.handlers import COMMAND_QUEUE
from services.payments.providers import SandboxProvider
from tests.conftest import PAYMENTS_ROLE, REDIS_URL
from tests.factories import create_product, pay, place_order, register
from tests.faults import eventually
from tests.payments_support import (
    charge_count,
    intent_event,
    is_,
    ledger_sum,
    order_status,
    payment_status,
    provider_charges,
    send_webhook,
    signature,
)


async def stock(db, product_id) -> int:
    return await db.fetchval("SELECT stock FROM products WHERE id = $1::uuid", product_id)


async def test_checkout_pays_the_order_and_balances_the_ledger(
    client, worker, admin_account, db, redis_prefix
):
    product = await create_product(client, admin_account, price_cents=1999, stock=5)
    customer = await register(client)
    order = await place_order(client, customer, product, quantity=2)
    status, payment = await pay(client, customer, order["id"])
    assert status == 200, payment
    assert payment["status"] == "succeeded"
    assert payment["amount_cents"] == 3998
    assert await order_status(db, order["id"]) == "paid"
    entries = await db.fetch(
        """SELECT e.account, e.amount_cents FROM payments.ledger_entries e
           JOIN payments.ledger_transactions t ON t.id = e.transaction_id
           WHERE t.payment_id = $1::uuid ORDER BY e.account""",
        payment["id"],
    )
    assert [(e["account"], e["amount_cents"]) for e in entries] == [
        ("psp_receivable", 3998),
        ("sales", -3998),
    ]
    assert await ledger_sum(db) == 0
    registry = client.app[METRICS].registry
    paid = {"service": "core", "outcome": "succeeded", "currency": "EUR"}
    assert registry.get_sample_value("relais_payments_settled_total", paid) >= 1
    assert registry.get_sample_value("relais_payments_settled_cents_total", paid) >= 3998
    settled = {"service": "core", "outcome": "succeeded"}
    assert registry.get_sample_value("relais_payment_settlement_seconds_count", settled) >= 1
    created = {"service": "core", "currency": "EUR"}
    assert registry.get_sample_value("relais_orders_created_total", created) >= 1
    [charge] = (await provider_charges(redis_prefix))[payment["id"]]
    assert charge["outcome"]["status"] == "succeeded"
    assert charge["key"] == payment["id"]


async def test_without_prefer_wait_the_answer_is_202_and_the_payment_settles(
    client, worker, admin_account, db
):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    status, payment = await pay(client, customer, order["id"], wait=None)
    assert status == 202
    assert payment["status"] == "processing"
    await eventually(lambda: is_(payment_status(db, payment["id"]), "succeeded"))
    response = await client.get(f"/api/payments/{payment['id']}", headers=customer.auth)
    assert response.status == 200
    body = await response.json()
    assert set(body) == {
        "id",
        "order_id",
        "status",
        "amount_cents",
        "refunded_cents",
        "currency",
        "failure_code",
        "created_at",
        "updated_at",
    }
    assert (body["status"], body["refunded_cents"]) == ("succeeded", 0)


@pytest.mark.parametrize(
    ("token", "code"),
    [("tok_chargeDeclined", "card_declined"), ("tok_insufficientFunds", "insufficient_funds")],
)
async def test_refused_card_fails_the_payment_and_the_customer_may_pay_again(
    client, worker, admin_account, db, token, code
):
    product = await create_product(client, admin_account, stock=3)
    customer = await register(client)
    order = await place_order(client, customer, product)
    status, failed = await pay(client, customer, order["id"], token)
    assert (status, failed["status"], failed["failure_code"]) == (200, "failed", code)
    assert await order_status(db, order["id"]) == "payment_failed"
    assert await stock(db, product["id"]) == 2  # the reservation is kept for the hold time
    assert await charge_count(db, failed["id"]) == 0
    status, paid = await pay(client, customer, order["id"], "tok_visa")
    assert (status, paid["status"]) == (200, "succeeded")
    assert paid["id"] != failed["id"]
    assert await order_status(db, order["id"]) == "paid"
    assert await ledger_sum(db) == 0


async def test_a_sandbox_outage_fails_every_charge_as_the_platform_s_failure_until_it_ends(
    client, worker, admin_account, db, redis_prefix
):
    product = await create_product(client, admin_account, stock=3)
    customer = await register(client)
    order = await place_order(client, customer, product)
    sandbox = SandboxProvider(Redis.from_url(REDIS_URL), prefix=redis_prefix)
    try:
        await sandbox.set_outage(30)
        status, failed = await pay(client, customer, order["id"], "tok_visa")
        assert (status, failed["status"], failed["failure_code"]) == (
            200,
            "failed",
            "processing_error",
        )
        assert settlement_outcome("failed", failed["failure_code"]) == "failed"  # not "declined"
        await sandbox.set_outage(0)
        status, paid = await pay(client, customer, order["id"], "tok_visa")
        assert (status, paid["status"]) == (200, "succeeded")
    finally:
        await sandbox.redis.aclose()
    assert await order_status(db, order["id"]) == "paid"
    assert await ledger_sum(db) == 0


async def test_provider_timeout_stays_processing_until_the_webhook_settles_it(
    webhooks, client, make_worker, admin_account, db, redis_prefix
):
    await make_worker(provider_timeout=0.2)
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    status, payment = await pay(client, customer, order["id"], "tok_timeout", wait=1)
    assert (status, payment["status"]) == (202, "processing")
    # Every retry times out; the payment is neither failed nor charged twice.
    await asyncio.sleep(2.5)
    assert await payment_status(db, payment["id"]) == "processing"
    assert await order_status(db, order["id"]) == "pending_payment"
    [charge] = (await provider_charges(redis_prefix))[payment["id"]]
    assert charge["calls"] >= 2  # asked again with the same key after each timeout
    payload = intent_event(
        f"evt_{uuid.uuid4().hex}",
        "payment_intent.succeeded",
        payment["id"],
        amount=payment["amount_cents"],
        currency="eur",
    )
    response = await send_webhook(webhooks, payload, signature(payload))
    assert response.status == 200, await response.text()
    await eventually(lambda: is_(payment_status(db, payment["id"]), "succeeded"))
    assert await order_status(db, order["id"]) == "paid"
    assert await charge_count(db, payment["id"]) == 1
    assert await ledger_sum(db) == 0


async def test_fifty_concurrent_requests_with_one_key_charge_once(
    client, worker, admin_account, db, redis_prefix
):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    key = f"pay-{uuid.uuid4()}"
    results = await asyncio.gather(
        *(pay(client, customer, order["id"], key=key, wait=None) for _ in range(50))
    )
    statuses = [status for status, _ in results]
    assert set(statuses) <= {202, 409}, statuses
    ids = {body["id"] for status, body in results if status == 202}
    assert len(ids) == 1
    payment_id = ids.pop()
    await eventually(lambda: is_(payment_status(db, payment_id), "succeeded"))
    assert (
        await db.fetchval("SELECT count(*) FROM payments WHERE order_id = $1::uuid", order["id"])
        == 1
    )
    assert len((await provider_charges(redis_prefix))[payment_id]) == 1
    assert await charge_count(db, payment_id) == 1
    # A replay after the fact returns the first answer, and still charges nothing more.
    status, replay = await pay(client, customer, order["id"], key=key, wait=None)
    assert (status, replay["id"]) == (202, payment_id)


async def test_pay_refuses_bad_requests_and_changes_nothing(client, worker, admin_account, db):
    product = await create_product(client, admin_account)
    customer = await register(client)
    stranger = await register(client)
    order = await place_order(client, customer, product)
    url = f"/api/orders/{order['id']}/payments"
    missing_key = await client.post(url, json={"payment_method": "tok_visa"}, headers=customer.auth)
    assert missing_key.status == 400
    assert missing_key.content_type == "application/problem+json"
    bad_body = await client.post(
        url, json={"payment_method": ""}, headers={**customer.auth, "Idempotency-Key": "k1"}
    )
    assert bad_body.status == 422
    status, _ = await pay(client, stranger, order["id"])
    assert status == 404
    assert (
        await db.fetchval("SELECT count(*) FROM payments WHERE order_id = $1::uuid", order["id"])
        == 0
    )
    assert (await pay(client, customer, order["id"]))[0] == 200
    status, body = await pay(client, customer, order["id"])
    assert status == 409, body
    cancelled = await place_order(client, customer, product)
    assert (
        await client.post(f"/api/orders/{cancelled['id']}/cancel", headers=customer.auth)
    ).status == 200
    assert (await pay(client, customer, cancelled["id"]))[0] == 409


async def test_a_payment_is_visible_to_its_payer_and_admins_only(client, worker, admin_account, db):
    product = await create_product(client, admin_account)
    customer = await register(client)
    stranger = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    url = f"/api/payments/{payment['id']}"
    assert (await client.get(url, headers=customer.auth)).status == 200
    assert (await client.get(url, headers=admin_account.auth)).status == 200
    assert (await client.get(url, headers=stranger.auth)).status == 404
    assert (await client.get(f"/api/payments/{uuid.uuid4()}", headers=customer.auth)).status == 404


async def test_refunds_partial_then_full_and_the_daily_report(client, worker, admin_account, db):
    product = await create_product(client, admin_account, price_cents=10_000, currency="USD")
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    url = f"/api/payments/{payment['id']}/refunds"
    admin_headers = {**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"}
    assert (
        await client.post(url, json={"amount_cents": 100}, headers=admin_account.auth)
    ).status == 400
    assert (
        await client.post(
            url, json={"amount_cents": 100}, headers={**customer.auth, "Idempotency-Key": "x"}
        )
    ).status == 403
    partial = await client.post(url, json={"amount_cents": 2_500}, headers=admin_headers)
    assert partial.status == 202, await partial.text()
    refund = await partial.json()
    assert (refund["amount_cents"], refund["status"]) == (2_500, "pending")
    await eventually(lambda: is_(payment_status(db, payment["id"]), "partially_refunded"))
    assert await order_status(db, order["id"]) == "paid"
    too_much = await client.post(
        url,
        json={"amount_cents": 7_501},
        headers={**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"},
    )
    assert too_much.status == 422
    rest = await client.post(
        url, headers={**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"}
    )
    assert rest.status == 202
    assert (await rest.json())["amount_cents"] == 7_500
    await eventually(lambda: is_(payment_status(db, payment["id"]), "refunded"))
    assert await order_status(db, order["id"]) == "refunded"
    body = await (await client.get(f"/api/payments/{payment['id']}", headers=customer.auth)).json()
    assert body["refunded_cents"] == 10_000
    assert await ledger_sum(db) == 0
    nothing_left = await client.post(
        url,
        json={"amount_cents": 1},
        headers={**admin_account.auth, "Idempotency-Key": f"r-{uuid.uuid4()}"},
    )
    assert nothing_left.status == 422
    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = await client.get(
        f"/api/payments/reports/daily?date={today}", headers=admin_account.auth
    )
    assert report.status == 200, await report.text()
    usd = {row["currency"]: row for row in (await report.json())["currencies"]}["USD"]
    expected = await db.fetchrow(
        """SELECT coalesce(sum(e.amount_cents) FILTER (WHERE t.kind = 'charge'), 0) AS captured,
                  coalesce(-sum(e.amount_cents) FILTER (WHERE t.kind = 'refund'), 0) AS refunded,
                  count(*) FILTER (WHERE t.kind = 'charge') AS count
           FROM payments.ledger_transactions t JOIN payments.ledger_entries e
             ON e.transaction_id = t.id AND e.account = 'psp_receivable'
           WHERE t.currency = 'USD'"""
    )
    assert usd["captured_cents"] == expected["captured"] >= 10_000
    assert usd["refunded_cents"] == expected["refunded"] >= 10_000
    assert usd["net_cents"] == usd["captured_cents"] - usd["refunded_cents"]
    assert usd["count"] == expected["count"] >= 1
    assert (
        await client.get("/api/payments/reports/daily?date=2026-13-01", headers=admin_account.auth)
    ).status == 422
    assert (
        await client.get(f"/api/payments/reports/daily?date={today}", headers=customer.auth)
    ).status == 403


async def test_report_without_a_worker_is_503_at_once(client, admin_account):
    started = time.monotonic()
    response = await client.get(
        "/api/payments/reports/daily?date=2026-11-22", headers=admin_account.auth
    )
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert time.monotonic() - started < 1.0


async def test_webhook_signature_tolerance_and_replay(webhooks, client, worker, admin_account, db):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"], "tok_chargeDeclined")
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = intent_event(
        event_id, "payment_intent.succeeded", payment["id"], amount=1250, currency="eur"
    )
    tampered = payload.replace(b'"object":"event"', b'"object":"evenT"')
    assert tampered != payload
    assert (await send_webhook(webhooks, tampered, signature(payload))).status == 400
    stale = signature(payload, at=int(time.time()) - 301)
    assert (await send_webhook(webhooks, payload, stale)).status == 400
    assert (
        await send_webhook(webhooks, payload, signature(payload, secret="whsec_other"))
    ).status == 400
    assert (await send_webhook(webhooks, payload, "garbage")).status == 400
    assert (
        await send_webhook(webhooks, payload, signature(payload), provider="paypal")
    ).status == 404
    seen = "SELECT count(*) FROM payments.webhook_events WHERE event_id = $1"
    assert await db.fetchval(seen, event_id) == 0
    first = await send_webhook(webhooks, payload, signature(payload))
    assert (first.status, await first.json()) == (200, {"received": True, "duplicate": False})
    again = await send_webhook(webhooks, payload, signature(payload))
    assert (again.status, await again.json()) == (200, {"received": True, "duplicate": True})
    # The worker asked the provider, whose books say declined: the failed payment stays so.
    await asyncio.sleep(0.5)
    assert await payment_status(db, payment["id"]) == "failed"
    assert await charge_count(db, payment["id"]) == 0
    assert await db.fetchval(seen, event_id) == 1
    forwarded = await db.fetch(
        "SELECT body FROM payments.outbox WHERE type = 'payment.provider_event'"
    )
    assert sum(event_id.encode() in row["body"] for row in forwarded) == 1


async def test_a_late_failure_event_cannot_undo_a_success(
    webhooks, client, worker, admin_account, db
):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    payload = intent_event(
        f"evt_{uuid.uuid4().hex}",
        "payment_intent.payment_failed",
        payment["id"],
        last_payment_error={"code": "card_declined"},
    )
    assert (await send_webhook(webhooks, payload, signature(payload))).status == 200
    await asyncio.sleep(1.0)
    assert await payment_status(db, payment["id"]) == "succeeded"
    assert await order_status(db, order["id"]) == "paid"


async def test_core_applies_events_out_of_order_without_going_backwards(client, admin_account, db):
    product = await create_product(client, admin_account, price_cents=500)
    customer = await register(client)
    order = await place_order(client, customer, product)
    status, payment = await pay(client, customer, order["id"], wait=None)
    assert status == 202
    ids = {"payment_id": payment["id"], "order_id": order["id"], "user_id": customer.id}
    pool = client.app[DB_POOL]
    refund_id = await db.fetchval(
        """INSERT INTO refunds (payment_id, amount_cents, status)
           VALUES ($1::uuid, 500, 'pending') RETURNING id""",
        payment["id"],
    )
    refunded = PaymentRefunded(
        **ids, refund_id=refund_id, amount_cents=500, refunded_cents=500, fully_refunded=True
    )
    succeeded = PaymentSucceeded(**ids, amount_cents=500, currency="EUR")
    metrics = client.app[CHECKOUT_METRICS]
    await apply_event(pool=pool, event=refunded, message_id="m-refunded", metrics=metrics)
    await apply_event(pool=pool, event=succeeded, message_id="m-succeeded", metrics=metrics)
    await apply_event(pool=pool, event=refunded, message_id="m-refunded", metrics=metrics)
    row = await db.fetchrow(
        "SELECT status, refunded_cents FROM payments WHERE id = $1::uuid", payment["id"]
    )
    assert (row["status"], row["refunded_cents"]) == ("refunded", 500)
    assert await order_status(db, order["id"]) == "refunded"


async def test_poison_message_is_dead_lettered_with_its_reason_while_payments_flow(
    client, worker, admin_account, db, amqp_url
):
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(COMMANDS)
        poison_id = f"poison-{uuid.uuid4()}"
        await exchange.publish(
            aio_pika.Message(b'{"type": "payment.charge", "version": 99}', message_id=poison_id),
            routing_key="payment.charge",
        )
        product = await create_product(client, admin_account)
        customer = await register(client)
        order = await place_order(client, customer, product)
        status, payment = await pay(client, customer, order["id"])
        assert (status, payment["status"]) == (200, "succeeded")
        dlq = await channel.get_queue(dead_letter_queue(COMMAND_QUEUE))

        async def find_poison():
            message = await dlq.get(fail=False, no_ack=False)
            if message is None:
                return None
            if message.message_id != poison_id:
                await message.nack(requeue=True)
                return None
            await message.ack()
            return message

        dead = await eventually(find_poison)
        assert "unknown message type 'payment.charge' version 99" in dead.headers[REASON_HEADER]
    finally:
        await connection.close()


async def test_the_worker_role_may_only_append_balanced_entries_to_the_ledger(
    client, worker, admin_account, db, payments_database_url
):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    conn = await asyncpg.connect(payments_database_url, server_settings={"search_path": "payments"})
    try:
        assert await conn.fetchval("SELECT current_user") == PAYMENTS_ROLE
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE ledger_entries SET amount_cents = 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_entries")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SELECT * FROM core.orders")
        unbalanced = """
            WITH t AS (INSERT INTO ledger_transactions (kind, reference, payment_id, currency)
                       VALUES ('charge', $1, $2::uuid, 'EUR') RETURNING id)
            INSERT INTO ledger_entries (transaction_id, account, amount_cents)
            SELECT id, 'sales', 5 FROM t"""
        with pytest.raises(asyncpg.RaiseError, match="does not sum to zero"):
            await conn.execute(unbalanced, f"test:{uuid.uuid4()}", payment["id"])
    finally:
        await conn.close()
    # Not even the schema's owner may rewrite history.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("DELETE FROM payments.ledger_entries")


async def test_unpaid_orders_are_released_after_the_hold(client, worker, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    customer = await register(client)
    failed = await place_order(client, customer, product, quantity=2)
    await pay(client, customer, failed["id"], "tok_chargeDeclined")
    paid = await place_order(client, customer, product, quantity=1)
    await pay(client, customer, paid["id"])
    processing = await place_order(client, customer, product, quantity=1)
    await db.execute(
        """INSERT INTO payments (order_id, user_id, amount_cents, currency, status, payment_method)
           VALUES ($1::uuid, $2::uuid, 1250, 'EUR', 'processing', 'tok_visa')""",
        processing["id"],
        customer.id,
    )
    cancel = await client.post(f"/api/orders/{processing['id']}/cancel", headers=customer.auth)
    assert cancel.status == 409
    assert await stock(db, product["id"]) == 1
    pool = client.app[DB_POOL]
    kept = await release_unpaid_orders(
        pool=pool, cache=client.app[PRODUCT_CACHE], hold_seconds=3600
    )
    assert kept == 0
    await asyncio.sleep(0.05)
    released = await release_unpaid_orders(
        pool=pool, cache=client.app[PRODUCT_CACHE], hold_seconds=0.01
    )
    assert released >= 1
    assert await order_status(db, failed["id"]) == "cancelled"
    assert await order_status(db, paid["id"]) == "paid"
    assert await order_status(db, processing["id"]) == "pending_payment"
    assert await stock(db, product["id"]) == 3
    product_now = await client.get(f"/api/products/{product['id']}")
    assert (await product_now.json())["stock"] == 3
