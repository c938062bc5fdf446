"""Recommendations: the co-purchase model finds planted structure in generated orders, and the
route answers from paid orders (bought together) or, without history, by embedding
(similar)."""

from __future__ import annotations

import random
from typing import Any

from services.ai.recommendations.model import train
from tests.factories import admin, create_product, pay, register
from tests.faults import eventually


def planted_orders(seed: int) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Orders over 600 products: 60 groups of 4 products bought together (each order takes two
    or three of one group, plus, half the time, one random product as noise), and orders of
    random products alone. Returns (training orders, held-back orders, groups)."""
    rng = random.Random(seed)
    groups = [list(range(start, start + 4)) for start in range(0, 240, 4)]
    orders = []
    for _ in range(6000):
        group = rng.choice(groups)
        basket = rng.sample(group, rng.choice((2, 3)))
        if rng.random() < 0.5:
            basket.append(rng.randrange(600))
        orders.append(basket)
    orders += [rng.sample(range(600), rng.choice((1, 2, 3))) for _ in range(3000)]
    rng.shuffle(orders)
    held = len(orders) // 10
    return orders[held:], orders[:held], groups


def test_planted_partners_rank_in_the_top_5_for_at_least_80_percent_of_held_back_orders():
    trained, held_back, groups = planted_orders(seed=7)
    model = train(trained)
    group_of = {product: group for group in groups for product in group}
    cases = hits = 0
    for basket in held_back:
        planted = [product for product in basket if product in group_of]
        for product in planted:
            partners = [p for p in basket if p != product and p in group_of[product]]
            if not partners:
                continue
            top5 = [partner for partner, _ in model.get(product, [])[:5]]
            cases += 1
            hits += all(partner in top5 for partner in partners)
    assert cases > 500
    assert hits / cases >= 0.8, f"{hits}/{cases}"


def test_a_basket_of_one_teaches_nothing_and_scores_are_ordered():
    model = train([[1], [1, 2], [1, 2], [1, 3], [2, 3, 4]])
    assert [p for p, _ in model[1]] == [2, 3]
    assert all(a >= b for (_, a), (_, b) in zip(model[2], model[2][1:], strict=False))
    assert train([[5], [6]]) == {}


async def test_paid_orders_teach_what_is_bought_together_and_a_new_product_gets_similar_ones(
    client, worker, make_ai_worker, db
):
    await make_ai_worker(ai_recommend_after_orders=3, ai_recommend_min_gap=0)
    owner, customer = await admin(client, db), await register(client)
    fields = {"stock": 100, "price_cents": 1000}
    pen = await create_product(client, owner, name="Fountain pen", category="office", **fields)
    ink = await create_product(
        client, owner, name="Bottle of blue ink", category="office", **fields
    )
    pencil = await create_product(
        client, owner, name="Graphite pencil", description="For sketching.", **fields
    )
    # three paid orders of the pen with the ink
    for _ in range(3):
        response = await client.post(
            "/api/orders",
            json={"items": [{"product_id": pen["id"], "quantity": 1},
                            {"product_id": ink["id"], "quantity": 2}]},
            headers=customer.auth,
        )  # fmt: skip
        order = await response.json()
        status, _ = await pay(client, customer, order["id"])
        assert status in (200, 201), status

    async def learned() -> Any:
        response = await client.get(
            f"/api/products/{pen['id']}/recommendations", headers=customer.auth
        )
        assert response.status == 200, await response.text()
        items = (await response.json())["items"]
        return items and items[0]["reason"] == "bought_together" and items

    items = await eventually(learned, within=10.0, every=0.3)
    assert items[0]["product_id"] == ink["id"] and items[0]["score"] > 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ai.baskets WHERE $1::uuid = ANY(product_ids)", pen["id"]
        )
        == 3
    )

    # no history: its neighbours by embedding, said so
    response = await client.get(
        f"/api/products/{pencil['id']}/recommendations", params={"limit": 2},
        headers=customer.auth,
    )  # fmt: skip
    items = (await response.json())["items"]
    assert len(items) == 2 and {item["reason"] for item in items} == {"similar"}
    assert pencil["id"] not in [item["product_id"] for item in items]

    missing = await client.get(
        "/api/products/00000000-0000-0000-0000-000000000000/recommendations",
        headers=customer.auth,
    )
    assert missing.status == 404
    assert (await client.get(
        f"/api/products/{pen['id']}/recommendations", params={"limit": 51}, headers=customer.auth
    )).status == 422  # fmt: skip
