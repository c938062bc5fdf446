"""Semantic search through core's route, over the real broker and database: the index follows
the catalog's events within 2 s, survives a restart without embedding again, and catches up
with what it missed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chassis.telemetry import METRICS
from services.ai.keys import EMBEDDER, INDEX
from tests.factories import admin, create_product, register
from tests.faults import eventually

BOOTS = {
    "name": "Trailblazer waterproof hiking boots",
    "description": "Leather hiking boots with a Gore-Tex membrane and a Vibram sole: dry feet "
    "on muddy trails and rocky paths.",
    "category": "outdoor",
    "price_cents": 12900,
}
OTHERS = [
    {"name": "Cast iron teapot", "description": "Keeps tea hot for hours.", "category": "kitchen"},
    {
        "name": "Ultrabook 14",
        "description": "A light laptop with a long battery life.",
        "category": "computers",
    },
    {
        "name": "Linen summer dress",
        "description": "Breathable and light for hot days.",
        "category": "clothing",
    },
]
QUERY = "footwear for walking in the mountains when it rains"


async def search(client: Any, who: Any, **params: Any) -> Any:
    response = await client.get("/api/ai/search", params=params, headers=who.auth)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


def sample(app: Any, name: str) -> float | None:
    value: float | None = app[METRICS].registry.get_sample_value(name, {"service": "ai"})
    return value


async def test_a_new_product_is_found_by_meaning_within_2_s_and_gone_within_2_s_of_deletion(
    client, make_ai_worker, db
):
    worker = await make_ai_worker()
    owner, customer = await admin(client, db), await register(client)
    for other in OTHERS:
        await create_product(client, owner, **other)
    started = time.monotonic()
    boots = await create_product(client, owner, **BOOTS)

    async def first() -> Any:
        items = await search(client, customer, q=QUERY, limit=5)
        return items and items[0]["product_id"] == boots["id"] and items

    items = await eventually(first, within=2.0)
    assert time.monotonic() - started < 2.0
    assert items[0]["name"] == BOOTS["name"] and 0 < items[0]["score"] <= 1
    assert [item["score"] for item in items] == sorted((i["score"] for i in items), reverse=True)
    # filters: category and price bounds
    assert boots["id"] not in [
        i["product_id"] for i in await search(client, customer, q=QUERY, category="kitchen")
    ]
    assert boots["id"] not in [
        i["product_id"] for i in await search(client, customer, q=QUERY, max_price=12899)
    ]
    assert (await search(client, customer, q=QUERY, min_price=12900, category="outdoor"))[0][
        "product_id"
    ] == boots["id"]
    # the vector is stored, and the worker's metrics say so
    stored = await db.fetchval(
        "SELECT length(embedding) FROM ai.product_vectors WHERE product_id = $1::uuid", boots["id"]
    )
    assert stored == 384 * 4
    assert sample(worker, "relais_ai_index_products") == len(worker[INDEX].index) > 0
    assert sample(worker, "relais_ai_embedding_batch_size_count") >= 2

    started = time.monotonic()
    response = await client.delete(f"/api/products/{boots['id']}", headers=owner.auth)
    assert response.status == 204

    async def gone() -> bool:
        items = await search(client, customer, q=QUERY, limit=50)
        return boots["id"] not in [item["product_id"] for item in items]

    await eventually(gone, within=2.0)
    assert time.monotonic() - started < 2.0


async def test_a_change_of_name_moves_the_product_and_a_late_event_cannot_revive_it(
    client, make_ai_worker, db
):
    await make_ai_worker()
    owner, customer = await admin(client, db), await register(client)
    product = await create_product(
        client, owner, name="Plain notebook", description="Ruled paper, A5.", category="office"
    )
    await eventually(
        lambda: _first_is(client, customer, "a notebook to write in", product["id"]), within=2.0
    )
    response = await client.patch(
        f"/api/products/{product['id']}",
        json={"name": "Camping hammock", "description": "Sleep between two trees outdoors."},
        headers=owner.auth,
    )
    assert response.status == 200
    await eventually(
        lambda: _first_is(client, customer, "somewhere to sleep in the forest", product["id"]),
        within=2.0,
    )
    stored = await db.fetchrow(
        "SELECT name, updated_at FROM ai.product_vectors WHERE product_id = $1::uuid",
        product["id"],
    )
    assert stored["name"] == "Camping hammock"


async def _first_is(client: Any, customer: Any, query: str, product_id: str) -> bool:
    items = await search(client, customer, q=query, limit=1)
    return bool(items) and items[0]["product_id"] == product_id


async def test_a_restarted_worker_embeds_nothing_again_and_catches_up_with_missed_changes(
    client, make_ai_worker, db
):
    first = await make_ai_worker()
    owner, customer = await admin(client, db), await register(client)
    await create_product(client, owner, **OTHERS[0])
    # the store reflects the whole catalog (events of earlier tests included) before it stops
    await eventually(lambda: caught_up(db), within=30.0, every=0.2)
    await first.shutdown()
    await first.cleanup()

    again = await make_ai_worker()
    # the stored vectors are loaded: one batch only (the warm-up), and every product is there
    assert sample(again, "relais_ai_embedding_batch_size_count") == 1
    size = len(again[INDEX].index)
    assert size == await db.fetchval("SELECT count(*) FROM ai.product_vectors WHERE live")
    await again.shutdown()
    await again.cleanup()

    # a change that no event announced (as if its event were lost): written behind core's back
    product_id = await db.fetchval(
        """INSERT INTO products (sku, name, description, price_cents, currency, stock, category)
           VALUES ($1, 'Snorkel mask', 'See the fish under water when you swim.', 2500, 'EUR',
                   3, 'sports') RETURNING id::text""",
        f"SKU-lost-{time.time_ns()}",
    )
    behind = await make_ai_worker(ai_index_check_interval=0.2, ai_index_max_lag=0.5)
    await eventually(
        lambda: _first_is(client, customer, "diving gear to see underwater", product_id),
        within=5.0,
    )
    await eventually(lambda: sample(behind, "relais_ai_index_lag_seconds") == 0, within=5.0)
    assert len(behind[INDEX].index) == size + 1


async def caught_up(db: Any) -> bool:
    """Whether every catalog change is stored (none behind)."""
    waiting = await db.fetchval(
        """SELECT count(*) FROM products p LEFT JOIN ai.product_vectors v ON v.product_id = p.id
           WHERE (v.product_id IS NULL AND p.deleted_at IS NULL) OR v.updated_at < p.updated_at"""
    )
    return bool(waiting == 0)


async def test_search_refuses_bad_queries_and_anonymous_callers(client, make_ai_worker):
    await make_ai_worker()
    customer = await register(client)
    for params in (
        {},
        {"q": ""},
        {"q": "x", "limit": 0},
        {"q": "x", "limit": 51},
        {"q": "x" * 501},
    ):
        response = await client.get("/api/ai/search", params=params, headers=customer.auth)
        assert response.status == 422, params
        assert response.content_type == "application/problem+json"
    assert (await client.get("/api/ai/search", params={"q": "boots"})).status == 401


async def test_embeddings_that_arrive_together_share_a_batch(make_ai_worker):
    worker = await make_ai_worker(ai_embed_window_ms=20, ai_embed_max_batch=16)
    embedder = worker[EMBEDDER]
    before = sample(worker, "relais_ai_embedding_batch_size_count")
    texts = [f"a waterproof jacket number {i}" for i in range(40)]
    vectors = await asyncio.gather(*(embedder.embed(text) for text in texts))
    batches = sample(worker, "relais_ai_embedding_batch_size_count") - before
    # 40 requests at once: batches of at most 16, so three (a fourth if one was cut early)
    assert 3 <= batches <= 4
    assert all(vector.shape == (384,) for vector in vectors)
    # each text gets its own vector, the same as when it is embedded alone
    alone = await embedder.embed(texts[7])
    assert float(alone @ vectors[7]) > 0.999
    assert float(vectors[0] @ vectors[1]) < 0.999
