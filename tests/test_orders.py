"""Orders: stock reservation, idempotent replay, visibility and cancellation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.core.idempotency import delete_expired_keys
from tests.factories import admin, create_product, register


async def stock(db, product_id) -> int:
    return await db.fetchval("SELECT stock FROM products WHERE id = $1::uuid", product_id)


async def test_order_reserves_stock(client, admin_account, db):
    cup = await create_product(client, admin_account, stock=5, price_cents=1250)
    pot = await create_product(client, admin_account, stock=2, price_cents=4000)
    customer = await register(client)
    response = await client.post(
        "/api/orders",
        json={
            "items": [
                {"product_id": cup["id"], "quantity": 2},
                {"product_id": pot["id"], "quantity": 1},
            ]
        },
        headers=customer.auth,
    )
    assert response.status == 201, await response.text()
    order = await response.json()
    assert order["status"] == "pending_payment"
    assert order["total_cents"] == 2 * 1250 + 4000
    assert order["currency"] == "EUR"
    assert sorted(
        (i["product_id"], i["quantity"], i["unit_price_cents"]) for i in order["items"]
    ) == sorted([(cup["id"], 2, 1250), (pot["id"], 1, 4000)])
    assert response.headers["Location"] == f"/api/orders/{order['id']}"
    assert (await stock(db, cup["id"]), await stock(db, pot["id"])) == (3, 1)
    # the cached product shows the reserved stock at once
    assert (await (await client.get(f"/api/products/{cup['id']}")).json())["stock"] == 3


async def test_insufficient_stock_changes_nothing(client, admin_account, db):
    plenty = await create_product(client, admin_account, stock=10)
    scarce = await create_product(client, admin_account, stock=1)
    customer = await register(client)
    orders_before = await db.fetchval("SELECT count(*) FROM orders")
    response = await client.post(
        "/api/orders",
        json={
            "items": [
                {"product_id": plenty["id"], "quantity": 3},
                {"product_id": scarce["id"], "quantity": 2},
            ]
        },
        headers=customer.auth,
    )
    assert response.status == 409
    assert (await response.json())["product_ids"] == [scarce["id"]]
    assert (await stock(db, plenty["id"]), await stock(db, scarce["id"])) == (10, 1)
    assert await db.fetchval("SELECT count(*) FROM orders") == orders_before


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"product_id": "PRODUCT", "quantity": 0}],
        [{"product_id": "PRODUCT", "quantity": -1}],
        [{"product_id": "PRODUCT", "quantity": 1.5}],
        [{"product_id": "not-a-uuid", "quantity": 1}],
        [{"product_id": "UNKNOWN", "quantity": 1}],
        [{"product_id": "PRODUCT", "quantity": 1}, {"product_id": "PRODUCT", "quantity": 1}],
        [{"product_id": "PRODUCT", "quantity": 1}, {"product_id": "USD", "quantity": 1}],
    ],
    ids=[
        "empty",
        "zero",
        "negative",
        "fraction",
        "malformed-id",
        "unknown",
        "duplicate",
        "mixed-currency",
    ],
)
async def test_invalid_orders_are_422_and_change_nothing(client, admin_account, db, items):
    product = await create_product(client, admin_account, stock=5)
    dollars = await create_product(client, admin_account, stock=5, currency="USD")
    names = {"PRODUCT": product["id"], "USD": dollars["id"], "UNKNOWN": str(uuid.uuid4())}
    body = {
        "items": [
            {**item, "product_id": names.get(item["product_id"], item["product_id"])}
            for item in items
        ]
    }
    customer = await register(client)
    response = await client.post("/api/orders", json=body, headers=customer.auth)
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await stock(db, product["id"]), await stock(db, dollars["id"])) == (5, 5)


async def test_order_needs_authentication(client):
    assert (await client.post("/api/orders", json={"items": []})).status == 401


async def test_concurrent_orders_for_last_units(make_client, db):
    first, second = await make_client(), await make_client()
    admin_account = await admin(first, db)
    product = await create_product(first, admin_account, stock=7)
    customers = [await register(first) for _ in range(4)]
    body = {"items": [{"product_id": product["id"], "quantity": 1}]}
    responses = await asyncio.gather(
        *(
            (first if i % 2 else second).post(
                "/api/orders", json=body, headers=customers[i % 4].auth
            )
            for i in range(30)
        )
    )
    statuses = [r.status for r in responses]
    assert statuses.count(201) == 7
    assert statuses.count(409) == 23
    assert await stock(db, product["id"]) == 0
    assert (
        await db.fetchval(
            "SELECT sum(quantity) FROM order_items WHERE product_id = $1::uuid", product["id"]
        )
        == 7
    )


async def test_idempotent_replay(client, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    customer = await register(client)
    body = {"items": [{"product_id": product["id"], "quantity": 2}]}
    headers = {**customer.auth, "Idempotency-Key": "checkout-42"}
    first = await client.post("/api/orders", json=body, headers=headers)
    second = await client.post("/api/orders", json=body, headers=headers)
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await stock(db, product["id"]) == 3
    different = await client.post(
        "/api/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}]},
        headers=headers,
    )
    assert different.status == 422
    assert await stock(db, product["id"]) == 3
    # keys belong to their user: another customer's same key is a new order
    other = await register(client)
    fresh = await client.post(
        "/api/orders", json=body, headers={**other.auth, "Idempotency-Key": "checkout-42"}
    )
    assert fresh.status == 201
    assert (await fresh.json())["id"] != (await first.json())["id"]


async def test_concurrent_retries_with_one_key(client, admin_account, db):
    product = await create_product(client, admin_account, stock=100)
    customer = await register(client)
    body = {"items": [{"product_id": product["id"], "quantity": 1}]}
    headers = {**customer.auth, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(client.post("/api/orders", json=body, headers=headers) for _ in range(20))
    )
    statuses = [r.status for r in responses]
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    ids = {(await r.json())["id"] for r in responses if r.status == 201}
    assert len(ids) == 1
    assert await stock(db, product["id"]) == 99


async def test_retry_while_first_is_running_is_409(client, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    customer = await register(client)
    key = f"k-{uuid.uuid4()}"
    # hold the key's lock the way a running first request does
    async with db.transaction():
        await db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"idempotency:{customer.id}:{key}",
        )
        response = await client.post(
            "/api/orders",
            json={"items": [{"product_id": product["id"], "quantity": 1}]},
            headers={**customer.auth, "Idempotency-Key": key},
        )
    assert response.status == 409
    assert await stock(db, product["id"]) == 5


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey"])
async def test_malformed_idempotency_key_is_400(client, key):
    customer = await register(client)
    response = await client.post(
        "/api/orders", json={"items": []}, headers={**customer.auth, "Idempotency-Key": key}
    )
    assert response.status == 400


async def test_order_visibility_and_listing(client, admin_account):
    product = await create_product(client, admin_account, stock=50)
    owner, stranger = await register(client), await register(client)
    body = {"items": [{"product_id": product["id"], "quantity": 1}]}
    ids = [
        (await (await client.post("/api/orders", json=body, headers=owner.auth)).json())["id"]
        for _ in range(3)
    ]
    url = f"/api/orders/{ids[0]}"
    assert (await client.get(url, headers=owner.auth)).status == 200
    assert (await client.get(url, headers=admin_account.auth)).status == 200
    assert (await client.get(url, headers=stranger.auth)).status == 404
    assert (await client.get(f"/api/orders/{uuid.uuid4()}", headers=owner.auth)).status == 404
    assert (await client.get("/api/orders/nope", headers=owner.auth)).status == 404
    assert (await client.get(url)).status == 401
    page = await (await client.get("/api/orders", params={"limit": "2"}, headers=owner.auth)).json()
    assert [o["id"] for o in page["items"]] == ids[::-1][:2]
    rest = await (
        await client.get("/api/orders", params={"cursor": page["next_cursor"]}, headers=owner.auth)
    ).json()
    assert [o["id"] for o in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    assert (await (await client.get("/api/orders", headers=stranger.auth)).json())["items"] == []


async def test_cancel_returns_stock_once(client, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    owner, stranger = await register(client), await register(client)
    order = await (
        await client.post(
            "/api/orders",
            json={"items": [{"product_id": product["id"], "quantity": 4}]},
            headers=owner.auth,
        )
    ).json()
    url = f"/api/orders/{order['id']}/cancel"
    assert (await client.post(url, headers=stranger.auth)).status == 404
    assert await stock(db, product["id"]) == 1
    responses = await asyncio.gather(*(client.post(url, headers=owner.auth) for _ in range(5)))
    assert {r.status for r in responses} == {200}
    assert {(await r.json())["status"] for r in responses} == {"cancelled"}
    assert await stock(db, product["id"]) == 5
    assert (await (await client.get(f"/api/products/{product['id']}")).json())["stock"] == 5


async def test_cancel_paid_order_conflicts(client, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    owner = await register(client)
    order = await (
        await client.post(
            "/api/orders",
            json={"items": [{"product_id": product["id"], "quantity": 1}]},
            headers=owner.auth,
        )
    ).json()
    await db.execute("UPDATE orders SET status = 'paid' WHERE id = $1::uuid", order["id"])
    response = await client.post(f"/api/orders/{order['id']}/cancel", headers=owner.auth)
    assert response.status == 409
    assert await stock(db, product["id"]) == 4


async def test_expired_idempotency_keys_are_purged(client, admin_account, db):
    product = await create_product(client, admin_account, stock=5)
    customer = await register(client)
    body = {"items": [{"product_id": product["id"], "quantity": 1}]}
    for key in ("old-key", "new-key"):
        headers = {**customer.auth, "Idempotency-Key": key}
        assert (await client.post("/api/orders", json=body, headers=headers)).status == 201
    await db.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
        " WHERE user_id = $1::uuid AND key = 'old-key'",
        customer.id,
    )
    assert await delete_expired_keys(db, retention_hours=24) >= 1
    left = await db.fetch("SELECT key FROM idempotency_keys WHERE user_id = $1::uuid", customer.id)
    assert [row["key"] for row in left] == ["new-key"]
