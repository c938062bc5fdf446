"""Dependencies taken away for real (a TCP proxy in front of them is cut), then given back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chassis.data import INVALIDATION_BUS, InvalidationBus
from services.core.keys import PRODUCT_CACHE
from tests.factories import admin, create_product, register
from tests.faults import TcpProxy, eventually


@pytest.fixture
async def redis_proxy():
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    yield proxy
    await proxy.cut()


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setattr(InvalidationBus, "HEARTBEAT", 0.1)
    monkeypatch.setattr(InvalidationBus, "HEARTBEAT_TIMEOUT", 0.4)


@pytest.fixture
async def pair(make_client, db, redis_proxy):
    """An instance on Redis directly, one through the proxy, an admin, and a product's URL."""
    direct = await make_client()
    proxied = await make_client(redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0")
    boss = await admin(direct, db)
    product = await create_product(direct, boss)
    return SimpleNamespace(
        direct=direct,
        proxied=proxied,
        boss=boss,
        id=product["id"],
        url=f"/api/products/{product['id']}",
    )


async def price(client, url: str) -> int:
    return int((await (await client.get(url)).json())["price_cents"])


async def test_reads_survive_redis_outage_and_stay_fresh(pair, db, redis_proxy):
    assert await price(pair.proxied, pair.url) == 1250  # near cache warm

    await redis_proxy.cut()
    await db.execute("UPDATE products SET price_cents = 777 WHERE id = $1::uuid", pair.id)
    # no invalidation can reach it now, so it must not serve its near cache: it reads through
    response = await pair.proxied.get(pair.url)
    assert response.status == 200
    assert (await response.json())["price_cents"] == 777

    customer = await register(pair.direct)
    refused = await pair.proxied.get("/api/users/me", headers=customer.auth)
    assert refused.status == 503  # revocation cannot be checked: fail closed
    assert refused.content_type == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"


async def test_deferred_invalidation_is_sent_once_redis_is_back(pair, db, redis_proxy):
    assert await price(pair.direct, pair.url) == 1250  # cached on `direct`

    await redis_proxy.cut()
    # the cut-off instance commits a change, but its invalidation cannot be sent yet
    await db.execute("UPDATE products SET price_cents = 999 WHERE id = $1::uuid", pair.id)
    await pair.proxied.app[PRODUCT_CACHE].invalidate(pair.id)
    assert await price(pair.direct, pair.url) == 1250

    await redis_proxy.start()

    async def fresh() -> bool:
        return await price(pair.direct, pair.url) == 999

    await eventually(fresh, within=5)


async def test_silent_subscription_is_dropped_and_near_cache_bypassed(
    fast_heartbeat, pair, redis_proxy
):
    assert await price(pair.proxied, pair.url) == 1250  # near cache warm

    redis_proxy.freeze()  # no RST, no FIN: only silence
    patched = await pair.direct.patch(pair.url, json={"price_cents": 4242}, headers=pair.boss.auth)
    assert patched.status == 200

    async def fresh() -> bool:
        return await price(pair.proxied, pair.url) == 4242

    await eventually(fresh, within=5)
    assert not pair.proxied.app[INVALIDATION_BUS].connected


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

    await eventually(recovered, within=5)
    await pg_proxy.cut()
