"""The shopping assistant: retrieval from the catalog, conversations in Redis, the template
without a language model, and an OpenAI-compatible API (a local server speaking its wire
format) with streaming, timeouts and a circuit breaker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from pydantic import SecretStr

from chassis.data import REDIS
from services.core.ai.chat import Turn, completions_url, template_reply
from services.core.keys import CORE_SETTINGS
from tests.factories import admin, create_product, register
from tests.fake_llm import API_KEY, MODEL
from tests.faults import eventually

KETTLE = {
    "name": "Gooseneck kettle",
    "description": "An electric kettle with a thin spout for pour-over coffee. Holds 1 l.",
    "category": "kitchen",
    "price_cents": 5900,
}
TENT = {
    "name": "Two-person tent",
    "description": "A light tent for camping trips, up in five minutes.",
    "category": "outdoor",
    "price_cents": 18900,
}


async def chat(client: Any, who: Any, message: str, **extra: Any) -> Any:
    return await client.post("/api/ai/chat", json={"message": message, **extra}, headers=who.auth)


async def catalog(client: Any, db: Any, customer: Any) -> tuple[dict[str, Any], ...]:
    """The kettle and the tent, created and searchable (other tests' kettles and tents may be
    there too: the database lives for the run)."""
    owner = await admin(client, db)
    kettle = await create_product(client, owner, **KETTLE)
    tent = await create_product(client, owner, **TENT)

    async def searchable() -> bool:
        response = await client.get(
            "/api/ai/search", params={"q": "camping shelter", "limit": 50}, headers=customer.auth
        )
        return tent["id"] in [item["product_id"] for item in (await response.json())["items"]]

    await eventually(searchable, within=5.0, every=0.2)
    return kettle, tent


async def test_the_assistant_answers_from_the_catalog_and_keeps_the_conversation(
    client, make_ai_worker, db
):
    await make_ai_worker()
    customer, stranger = await register(client), await register(client)
    kettle, tent = await catalog(client, db, customer)

    response = await chat(client, customer, "I want to make pour-over coffee at home")
    assert response.status == 200, await response.text()
    first = await response.json()
    assert first["source"] == "catalog"
    assert kettle["id"] in first["products"]
    assert tent["id"] not in first["products"]  # retrieved, but too far from the question
    assert "Gooseneck kettle" in first["reply"] and "EUR 59.00" in first["reply"]
    conversation = first["conversation_id"]

    # a follow-up keeps the conversation: same id, and the history is kept in Redis
    response = await chat(
        client, customer, "and something for sleeping outdoors", conversation_id=conversation
    )
    second = await response.json()
    assert second["conversation_id"] == conversation
    assert tent["id"] in second["products"]
    redis, key = (
        client.app[REDIS],
        f"{client.app[CORE_SETTINGS].redis_key_prefix}chat:{conversation}",
    )
    said = [orjson.loads(item) for item in await redis.lrange(key, 0, -1)]
    assert [m["role"] for m in said] == ["user", "assistant", "user", "assistant"]
    assert said[0]["content"] == "I want to make pour-over coffee at home"
    assert 0 < await redis.ttl(key) <= 3600

    # another account cannot continue it, and an unknown id is 404 too
    response = await chat(client, stranger, "hello", conversation_id=conversation)
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    response = await chat(client, customer, "hello", conversation_id=str(uuid.uuid4()))
    assert response.status == 404
    for body in ({"message": ""}, {"message": "x" * 2001}, {"message": "hi", "extra": 1}):
        response = await client.post("/api/ai/chat", json=body, headers=customer.auth)
        assert response.status == 422, body


async def test_the_language_model_gets_the_retrieved_products_and_its_answer_streams(
    make_client, make_ai_worker, db, language_model
):
    client = await make_client(
        llm_base_url=language_model.url, llm_api_key=SecretStr(API_KEY), llm_model=MODEL
    )
    await make_ai_worker()
    customer = await register(client)
    kettle, _ = await catalog(client, db, customer)

    response = await chat(client, customer, "a kettle for pour-over coffee")
    assert response.status == 200, await response.text()
    assert kettle["id"] in (await response.json())["products"]
    response = await chat(client, customer, "a kettle for pour-over coffee")
    assert response.status == 200, await response.text()
    whole = await response.json()
    assert whole["source"] == "llm"
    assert whole["reply"].startswith("You could look at Gooseneck kettle")
    sent = language_model.requests[-1]
    assert sent["model"] == MODEL and sent["stream"] is False
    assert "Gooseneck kettle" in sent["messages"][0]["content"]  # the products as context
    assert sent["messages"][-1] == {"role": "user", "content": "a kettle for pour-over coffee"}

    # streamed: products first, then the model's chunks as they come, then the whole turn
    response = await client.post(
        "/api/ai/chat",
        json={"message": "and is it electric?", "conversation_id": whole["conversation_id"]},
        headers={**customer.auth, "Accept": "text/event-stream"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = parse_events(await response.text())
    names = [name for name, _ in events]
    assert names[0] == "products" and names[-1] == "done"
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) >= 3
    done = events[-1][1]
    assert "".join(deltas) == done["reply"] and done["source"] == "llm"
    assert done["conversation_id"] == whole["conversation_id"]
    streamed = language_model.requests[-1]
    assert streamed["stream"] is True
    # the history went along: the first turn, then the new message
    assert [m["role"] for m in streamed["messages"]] == [
        "system", "user", "assistant", "user"
    ]  # fmt: skip


def parse_events(text: str) -> list[tuple[str, Any]]:
    """Server-sent events as (event, data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], orjson.loads(fields["data"])))
    return events


async def test_a_failing_or_silent_model_falls_back_to_the_template_and_trips_the_breaker(
    make_client, make_ai_worker, db, language_model
):
    client = await make_client(
        llm_base_url=language_model.url,
        llm_api_key=SecretStr(API_KEY),
        llm_read_timeout=0.3,
        llm_breaker_threshold=2,
        llm_breaker_reset=60,
    )
    await make_ai_worker()
    customer = await register(client)
    await catalog(client, db, customer)

    language_model.stall = 5.0  # silent past the read timeout
    started = time.monotonic()
    response = await chat(client, customer, "a tent for camping")
    assert response.status == 200
    assert (await response.json())["source"] == "catalog"
    assert time.monotonic() - started < 3.0

    language_model.stall, language_model.fail = 0.0, 5  # 500s
    response = await chat(client, customer, "a tent for camping")
    body = await response.json()
    assert body["source"] == "catalog" and "Two-person tent" in body["reply"]
    asked = len(language_model.requests)
    # two failures in a row: the circuit is open, the API is not asked, the template answers
    response = await chat(client, customer, "a tent for camping")
    assert (await response.json())["source"] == "catalog"
    assert len(language_model.requests) == asked


def test_the_api_path_follows_openais_convention():
    assert completions_url("https://api.openai.com/v1") == (
        "https://api.openai.com/v1/chat/completions"
    )
    assert completions_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/v1/chat/completions"
    assert completions_url("http://proxy/openai/v1/") == "http://proxy/openai/v1/chat/completions"


def test_the_template_lists_each_product_with_its_price_and_first_sentence():
    products = [
        {"name": "Kettle", "price_cents": 5900, "currency": "EUR", "description": "Pours. Boils."},
        {"name": "Pen", "price_cents": 250, "currency": "JPY", "description": ""},
    ]
    turn = Turn(conversation_id=uuid.uuid4(), message="m", history=[], products=products)
    assert template_reply(turn).splitlines()[1:] == [
        "- Kettle (EUR 59.00): Pours.",
        "- Pen (JPY 250)",
    ]
    assert "nothing" in template_reply(Turn(uuid.uuid4(), "m", [], []))
