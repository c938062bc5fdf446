"""Dependencies taken away for real (a TCP proxy in front of them is cut), then given back."""

from __future__ import annotations

import asyncio

import pytest

from services.core.keys import PRODUCT_CACHE
from tests.factories import admin, create_product, register
from tests.faults import TcpProxy


@pytest.fixture
async def redis_proxy():
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def eventually(check) -> None:
    async with asyncio.timeout(5):
        while not await check():  # noqa: ASYNC110 - polls state outside this process
            await asyncio.sleep(0.05)


async def test_reads_survive_redis_outage_and_stay_fresh(make_client, db, redis_proxy):
    direct = await make_client()
    cut_off = await make_client(redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0")
    boss = await admin(direct, db)
    product = await create_product(direct, boss)
    url = f"/api/products/{product['id']}"
    assert (await (await cut_off.get(url)).json())["price_cents"] == 1250  # near cache warm

    await redis_proxy.cut()
    await db.execute("UPDATE products SET price_cents = 777 WHERE id = $1::uuid", product["id"])
    # no invalidation can reach it now, so it must not serve its near cache: it reads through
    response = await cut_off.get(url)
    assert response.status == 200
    assert (await response.json())["price_cents"] == 777

    customer = await register(direct)
    refused = await cut_off.get("/api/users/me", headers=customer.auth)
    assert refused.status == 503  # revocation cannot be checked: fail closed
    assert refused.content_type == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"


async def test_deferred_invalidation_is_sent_once_redis_is_back(make_client, db, redis_proxy):
    direct = await make_client()
    cut_off = await make_client(redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0")
    boss = await admin(direct, db)
    product = await create_product(direct, boss)
    url = f"/api/products/{product['id']}"
    assert (await (await direct.get(url)).json())["price_cents"] == 1250  # cached on `direct`

    await redis_proxy.cut()
    # the cut-off instance commits a change, but its invalidation cannot be sent yet
    await db.execute("UPDATE products SET price_cents = 999 WHERE id = $1::uuid", product["id"])
    await cut_off.app[PRODUCT_CACHE].invalidate(product["id"])
    assert (await (await direct.get(url)).json())["price_cents"] == 1250

    await redis_proxy.start()

    async def fresh() -> bool:
        return bool((await (await direct.get(url)).json())["price_cents"] == 999)

    await eventually(fresh)


async def test_database_outage_is_503_then_recovers(make_client, database_url):
    pg_proxy = TcpProxy("127.0.0.1", 5432)
    await pg_proxy.start()
    url = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
    client = await make_client(database_url=url)
    assert (await client.get("/api/products")).status == 200
    await pg_proxy.cut()
    response = await client.get("/api/products")
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    ready = await client.get("/health/ready")
    assert ready.status == 503 and (await ready.json())["checks"]["postgres"].startswith("down")
    await pg_proxy.start()

    async def recovered() -> bool:
        return (await client.get("/api/products")).status == 200

    await eventually(recovered)
    await pg_proxy.cut()
