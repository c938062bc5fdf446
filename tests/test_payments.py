"""Checkout against real PostgreSQL, Redis and RabbitMQ: core, the outbox and the worker."""

from __future__ import annotations

import pytest

from tests.factories import admin, create_product, pay, place_order, register


@pytest.fixture
async def admin_account(client, db):
    return await admin(client, db)


async def ledger_sum(db) -> int:
    return int(
        await db.fetchval("SELECT coalesce(sum(amount_cents), 0) FROM payments.ledger_entries")
    )


async def order_status(db, order_id) -> str:
    return await db.fetchval("SELECT status FROM orders WHERE id = $1::uuid", order_id)


async def test_checkout_pays_the_order_and_balances_the_ledger(client, worker, admin_account, db):
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
