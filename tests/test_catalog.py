"""Products: admin writes, public reads, keyset pagination, ETags and cross-instance caching."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.core.keys import PRODUCT_CACHE
from tests.factories import admin, create_product, product_fields, register
from tests.faults import eventually

PROBLEM = "application/problem+json"


async def test_create_and_read_product(client, admin_account):
    product = await create_product(client, admin_account, stock=3)
    assert set(product) == {
        "id",
        "sku",
        "name",
        "description",
        "price_cents",
        "currency",
        "stock",
        "category",
        "created_at",
        "updated_at",
    }
    response = await client.get(f"/api/products/{product['id']}")
    assert response.status == 200
    assert await response.json() == product
    assert response.headers["ETag"].startswith('"')
    head = await client.head(f"/api/products/{product['id']}")
    assert head.status == 200 and head.headers["ETag"] == response.headers["ETag"]


async def test_create_requires_admin(client, db):
    assert (await client.post("/api/products", json=product_fields())).status == 401
    customer = await register(client)
    response = await client.post("/api/products", json=product_fields(), headers=customer.auth)
    assert response.status == 403
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"price_cents": 0}, "price_cents"),
        ({"price_cents": -5}, "price_cents"),
        ({"price_cents": 12.5}, "price_cents"),
        ({"price_cents": "100"}, "price_cents"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"stock": -1}, "stock"),
        ({"stock": 2**31}, "stock"),
        ({"sku": ""}, "sku"),
        ({"name": "   "}, "name"),
        ({"category": None}, "category"),
    ],
)
async def test_create_rejects_invalid_fields(client, admin_account, db, override, field):
    before = await db.fetchval("SELECT count(*) FROM products")
    response = await client.post(
        "/api/products", json=product_fields(**override), headers=admin_account.auth
    )
    assert response.status == 422
    assert field in {e["field"] for e in (await response.json())["errors"]}
    assert await db.fetchval("SELECT count(*) FROM products") == before


async def test_duplicate_sku_conflicts(client, admin_account):
    product = await create_product(client, admin_account)
    response = await client.post(
        "/api/products", json=product_fields(sku=product["sku"]), headers=admin_account.auth
    )
    assert response.status == 409


async def test_unknown_and_malformed_ids_are_404(client):
    assert (await client.get(f"/api/products/{uuid.uuid4()}")).status == 404
    response = await client.get("/api/products/not-a-uuid")
    assert response.status == 404
    assert response.content_type == PROBLEM


async def test_if_none_match_gives_304_until_changed(client, admin_account):
    product = await create_product(client, admin_account)
    url = f"/api/products/{product['id']}"
    etag = (await client.get(url)).headers["ETag"]
    not_modified = await client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert not_modified.headers["ETag"] == etag
    assert (await client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})).status == 304
    await client.patch(url, json={"price_cents": 999}, headers=admin_account.auth)
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert (await changed.json())["price_cents"] == 999


async def test_patch_and_delete(client, admin_account):
    product = await create_product(client, admin_account)
    url = f"/api/products/{product['id']}"
    patched = await client.patch(url, json={"name": "Mug", "stock": 0}, headers=admin_account.auth)
    assert patched.status == 200
    body = await patched.json()
    assert (body["name"], body["stock"], body["sku"]) == ("Mug", 0, product["sku"])
    assert body["updated_at"] > product["updated_at"]
    for bad in ({}, {"price_cents": None}, {"currency": "usd"}, {"unknown": 1}):
        assert (await client.patch(url, json=bad, headers=admin_account.auth)).status == 422
    assert (await client.delete(url, headers=admin_account.auth)).status == 204
    assert (await client.get(url)).status == 404
    assert (await client.delete(url, headers=admin_account.auth)).status == 404
    assert (await client.patch(url, json={"name": "X"}, headers=admin_account.auth)).status == 404
    # the sku of a retired product is free again
    await create_product(client, admin_account, sku=product["sku"])


async def test_patch_to_taken_sku_conflicts(client, admin_account):
    first = await create_product(client, admin_account)
    second = await create_product(client, admin_account)
    response = await client.patch(
        f"/api/products/{second['id']}", json={"sku": first["sku"]}, headers=admin_account.auth
    )
    assert response.status == 409


async def test_writes_need_admin(client, admin_account):
    product = await create_product(client, admin_account)
    customer = await register(client)
    url = f"/api/products/{product['id']}"
    assert (await client.patch(url, json={"name": "X"}, headers=customer.auth)).status == 403
    assert (await client.delete(url, headers=customer.auth)).status == 403
    assert (await client.delete(url)).status == 401


async def test_keyset_pagination_is_stable_under_inserts(client, admin_account):
    category = f"cat-{uuid.uuid4().hex[:8]}"
    created = [await create_product(client, admin_account, category=category) for _ in range(5)]
    first = await (
        await client.get("/api/products", params={"category": category, "limit": "2"})
    ).json()
    assert [p["id"] for p in first["items"]] == [p["id"] for p in created[:2]]
    await create_product(client, admin_account, category=category)  # lands at the end
    seen = [p["id"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await (
            await client.get(
                "/api/products", params={"category": category, "limit": "2", "cursor": cursor}
            )
        ).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:5] == [p["id"] for p in created]
    assert len(seen) == len(set(seen)) == 6


async def test_filters(client, admin_account):
    category = f"cat-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex[:8]
    cheap = await create_product(
        client, admin_account, category=category, price_cents=100, name=f"Cheap {token}"
    )
    await create_product(
        client, admin_account, category=category, price_cents=5000, name="Dear 100%"
    )
    result = await (
        await client.get("/api/products", params={"category": category, "max_price": "1000"})
    ).json()
    assert [p["id"] for p in result["items"]] == [cheap["id"]]
    result = await (await client.get("/api/products", params={"q": token.upper()})).json()
    assert [p["id"] for p in result["items"]] == [cheap["id"]]
    result = await (
        await client.get("/api/products", params={"category": category, "q": "100%"})
    ).json()
    assert [p["name"] for p in result["items"]] == ["Dear 100%"]
    result = await (
        await client.get("/api/products", params={"category": category, "min_price": "101"})
    ).json()
    assert [p["price_cents"] for p in result["items"]] == [5000]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"min_price": "-1"},
        {"cursor": "garbage!"},
        {"sort": "name"},
    ],
)
async def test_bad_listing_parameters_are_422(client, params):
    response = await client.get("/api/products", params=params)
    assert response.status == 422
    assert response.content_type == PROBLEM


async def test_an_empty_price_range_is_an_empty_page(client):
    # Every value the document allows is accepted: min_price above max_price matches nothing.
    response = await client.get("/api/products", params={"min_price": "10", "max_price": "5"})
    assert response.status == 200
    assert await response.json() == {"items": [], "next_cursor": None}


async def test_change_is_seen_at_once_by_every_instance(make_client, db):
    first, second = await make_client(), await make_client()
    admin_account = await admin(first, db)
    product = await create_product(first, admin_account)
    url = f"/api/products/{product['id']}"
    for instance in (first, second, first, second):  # warm Redis and both near caches
        assert (await (await instance.get(url)).json())["price_cents"] == 1250
    for price in range(2000, 2010):
        assert (
            await first.patch(url, json={"price_cents": price}, headers=admin_account.auth)
        ).status == 200
        assert (await (await second.get(url)).json())["price_cents"] == price
        assert (await (await first.get(url)).json())["price_cents"] == price
    assert (await second.delete(url, headers=admin_account.auth)).status == 204
    assert (await first.get(url)).status == 404


async def test_cache_serves_without_database_and_stampede_loads_once(make_client, db):
    first, second = await make_client(), await make_client()
    admin_account = await admin(first, db)
    product = await create_product(first, admin_account)
    url = f"/api/products/{product['id']}"
    metrics = [instance.app for instance in (first, second)]

    def database_loads() -> float:
        from chassis.telemetry import METRICS

        total = 0.0
        for app in metrics:
            total += app[METRICS].cache.labels("core", "product", "database")._value.get()
        return total

    before = database_loads()
    responses = await asyncio.gather(
        *(inst.get(url) for inst in (first, second) for _ in range(50))
    )
    assert {r.status for r in responses} == {200}
    assert database_loads() - before == 1
    # served from the caches even when the row changes behind their back
    await db.execute(
        "UPDATE products SET name = 'changed directly' WHERE id = $1::uuid", product["id"]
    )
    assert (await (await second.get(url)).json())["name"] == product["name"]


async def test_a_write_whose_process_dies_before_invalidating_is_seen_within_seconds(
    make_client, db, monkeypatch
):
    writer, reader = await make_client(), await make_client()
    boss = await admin(writer, db)
    product = await create_product(writer, boss, stock=10)
    url = f"/api/products/{product['id']}"
    for _ in range(3):  # in Redis and in the reader's near cache
        assert (await (await reader.get(url)).json())["stock"] == 10

    async def dies(*keys: str) -> None:
        raise RuntimeError("killed between the commit and the invalidation")

    monkeypatch.setattr(writer.app[PRODUCT_CACHE], "invalidate", dies)
    customer = await register(writer)
    response = await writer.post(
        "/api/orders",
        json={"items": [{"product_id": product["id"], "quantity": 3}]},
        headers=customer.auth,
    )
    assert response.status == 500  # the order committed; its invalidation never left
    assert await db.fetchval("SELECT stock FROM products WHERE id = $1::uuid", product["id"]) == 7

    async def fresh() -> bool:
        return (await (await reader.get(url)).json())["stock"] == 7

    # another instance sends what the dead one recorded: not PRODUCT_CACHE_TTL (300 s) later
    await eventually(fresh, within=5, every=0.1)
    assert await db.fetchval("SELECT count(*) FROM cache_invalidations") == 0
