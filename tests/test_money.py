"""Currencies: an allow-list with each one's minor unit, used wherever amounts cross to a
provider; any other currency is a 422."""

from __future__ import annotations

import pytest

from contracts import CURRENCIES, decimal_amount
from tests.factories import admin, create_product, pay, place_order, product_fields, register
from tests.payments_support import provider_charges


@pytest.mark.parametrize(
    ("minor", "currency", "decimal"),
    [(1050, "EUR", "10.50"), (1050, "JPY", "1050"), (1050, "KWD", "1.050"), (5, "USD", "0.05")],
)
def test_minor_units_as_decimal_strings(minor, currency, decimal):
    assert decimal_amount(minor, currency) == decimal
    assert (CURRENCIES["JPY"], CURRENCIES["EUR"], CURRENCIES["KWD"]) == (0, 2, 3)


@pytest.mark.parametrize("currency", ["XYZ", "XTS", "ISK"])
async def test_a_product_in_another_currency_is_a_422(client, db, currency):
    boss = await admin(client, db)
    before = await db.fetchval("SELECT count(*) FROM products")
    response = await client.post(
        "/api/products", json=product_fields(currency=currency), headers=boss.auth
    )
    assert response.status == 422
    assert [error["field"] for error in (await response.json())["errors"]] == ["currency"]
    assert await db.fetchval("SELECT count(*) FROM products") == before
    document = await (await client.get("/api/openapi.json")).json()
    listed = document["components"]["schemas"]["ProductIn"]["properties"]["currency"]["enum"]
    assert currency not in listed and {"EUR", "JPY", "KWD"} <= set(listed)


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(("currency", "booked"), [("JPY", "1250"), ("KWD", "1.250")])
async def test_the_provider_is_charged_in_the_currency_minor_unit(
    client, db, redis_prefix, currency, booked
):
    boss = await admin(client, db)
    product = await create_product(client, boss, price_cents=1250, currency=currency)
    customer = await register(client)
    order = await place_order(client, customer, product)
    status, payment = await pay(client, customer, order["id"])
    assert (status, payment["status"], payment["currency"]) == (200, "succeeded", currency)
    [charge] = (await provider_charges(redis_prefix))[payment["id"]]
    assert (charge["metadata"]["amount"], charge["metadata"]["currency"]) == (booked, currency)


async def test_an_order_in_a_currency_no_longer_accepted_cannot_be_paid(client, db):
    boss = await admin(client, db)
    product = await create_product(client, boss)
    customer = await register(client)
    order = await place_order(client, customer, product)
    # placed before the allow-list existed
    await db.execute("UPDATE orders SET currency = 'XYZ' WHERE id = $1::uuid", order["id"])
    status, body = await pay(client, customer, order["id"], wait=None)
    assert status == 422
    assert [error["field"] for error in body["errors"]] == ["currency"]
    assert (
        await db.fetchval("SELECT count(*) FROM payments WHERE order_id = $1::uuid", order["id"])
        == 0
    )
