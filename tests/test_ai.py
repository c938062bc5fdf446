"""The AI worker's text analysis through core's route, over the real broker: real models, the
worker's readiness, 503 without a worker, 504 past the deadline, the per-account limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from segtok.segmenter import split_multi

from chassis.telemetry import METRICS
from contracts import MAX_TEXT
from services.ai.keys import TEXT
from tests.conftest import rabbitmqctl
from tests.factories import register
from tests.faults import eventually

REVIEW = (
    "I absolutely love this teapot. It keeps the tea hot for hours and it looks beautiful on "
    "our kitchen table. The cast iron is heavy but solid. Shipping was quick and the box was "
    "well packed. My whole family enjoys our afternoon tea even more now. Highly recommended!"
)
ANGRY = (
    "This is the worst purchase I have ever made. The lid broke on the first day, the handle "
    "burns your fingers, and support ignored my emails. Terrible quality, a waste of money."
)
FRENCH = (
    "Cette théière est vraiment magnifique. Elle garde le thé chaud pendant des heures et toute "
    "la famille l'adore. Je la recommande à tous mes amis."
)


async def analyze(client: Any, who: Any, text: str) -> Any:
    return await client.post("/api/ai/text/analyze", json={"text": text}, headers=who.auth)


async def test_text_analysis_finds_language_sentiment_keywords_and_a_summary(
    client, make_ai_worker
):
    worker = await make_ai_worker()
    customer = await register(client)
    response = await analyze(client, customer, REVIEW)
    assert response.status == 200, await response.text()
    review = await response.json()
    assert review["language"] == "en"
    assert review["sentiment"]["label"] == "positive" and review["sentiment"]["score"] > 0.5
    assert "teapot" in " ".join(review["keywords"]).lower()
    # extractive: at most three of the text's own sentences, in the text's order
    sentences = [s.strip() for s in split_multi(REVIEW)]
    chosen = [s.strip() for s in split_multi(review["summary"])]
    assert 1 <= len(chosen) <= 3 and all(s in sentences for s in chosen)
    assert [sentences.index(s) for s in chosen] == sorted(sentences.index(s) for s in chosen)

    angry = await (await analyze(client, customer, ANGRY)).json()
    assert angry["sentiment"]["label"] == "negative" and angry["sentiment"]["score"] < -0.5
    french = await (await analyze(client, customer, FRENCH)).json()
    assert french["language"] == "fr"
    assert any("théière" in keyword.lower() for keyword in french["keywords"])

    registry = worker[METRICS].registry
    assert (
        registry.get_sample_value(
            "relais_ai_model_load_seconds", {"service": "ai", "model": "text"}
        )
        > 0
    )


@pytest.mark.parametrize("text", ["", "x" * (MAX_TEXT + 1)])
async def test_a_text_out_of_bounds_is_422_and_no_token_is_401(client, make_ai_worker, text):
    await make_ai_worker()
    customer = await register(client)
    response = await analyze(client, customer, text)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    anonymous = await client.post("/api/ai/text/analyze", json={"text": "hello"})
    assert anonymous.status == 401


async def test_without_a_worker_the_answer_is_503_at_once(client):
    customer = await register(client)
    started = time.monotonic()
    response = await analyze(client, customer, REVIEW)
    assert response.status == 503
    assert time.monotonic() - started < 1.0
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"  # NGINX passes it on as it is


async def test_a_worker_slower_than_the_deadline_is_504_at_the_deadline(
    make_client, make_ai_worker, monkeypatch
):
    client = await make_client(ai_deadline=0.5)
    worker = await make_ai_worker()
    pool = worker[TEXT]
    run_now = pool.run

    async def slow(call: Any, *args: Any) -> Any:
        await asyncio.sleep(1.5)
        return await run_now(call, *args)

    monkeypatch.setattr(pool, "run", slow)
    customer = await register(client)
    started = time.monotonic()
    response = await analyze(client, customer, REVIEW)
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert 0.4 < elapsed < 1.4


async def test_each_account_has_its_own_analysis_budget(make_client, make_ai_worker):
    client = await make_client(ai_rate_limit="2/minute")
    await make_ai_worker()
    first, second = await register(client), await register(client)
    assert [(await analyze(client, first, "Nice tea.")).status for _ in range(3)] == [
        200,
        200,
        429,
    ]
    refused = await analyze(client, first, "Nice tea.")
    assert refused.headers["Retry-After"]
    assert (await analyze(client, second, "Nice tea.")).status == 200


async def test_the_worker_is_ready_once_its_models_are_loaded(aiohttp_client, ai_settings):
    from services.ai.app import create_app

    worker = await aiohttp_client(create_app(ai_settings))
    ready = await worker.get("/health/ready")
    assert ready.status == 200, await ready.text()
    assert TEXT in worker.app


async def test_a_request_whose_caller_gave_up_is_dropped_unworked_and_counted(
    make_client, make_ai_worker, monkeypatch
):
    client = await make_client(ai_deadline=1.0)
    worker = await make_ai_worker(ai_threads=1, ai_prefetch=4)
    pool = worker[TEXT]
    run_now, worked = pool.run, []

    async def slow(call: Any, *args: Any) -> Any:
        worked.append(args)
        await asyncio.sleep(1.5)
        return await run_now(call, *args)

    monkeypatch.setattr(pool, "run", slow)
    customer = await register(client)
    first, second = await asyncio.gather(
        analyze(client, customer, "First text."), analyze(client, customer, "Second text.")
    )
    assert (first.status, second.status) == (504, 504)
    registry = worker[METRICS].registry

    def expired() -> float:
        labels = {"service": "ai", "method": "ai.text.analyze", "outcome": "expired"}
        return registry.get_sample_value("relais_rpc_requests_total", labels) or 0.0

    await eventually(lambda: expired() == 1, within=5)
    assert len(worked) == 1  # the second one was never worked on
    waited = {"service": "ai", "method": "ai.text.analyze"}
    assert registry.get_sample_value("relais_rpc_queue_wait_seconds_count", waited) == 2


def test_declare_makes_the_workers_event_queue_before_any_worker_runs():
    vhost = f"relais_test_declare_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        result = subprocess.run(
            [sys.executable, "-m", "services.ai", "declare"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}"},
        )
        assert result.returncode == 0, result.stderr
        bindings = subprocess.run(
            ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--no-table-headers",
             "source_name", "destination_name", "routing_key"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        bound = {tuple(line.split("\t")) for line in bindings.splitlines()}
        for key in ("product.created", "product.updated", "product.deleted", "order.paid"):
            assert ("relais.events", "ai.catalog", key) in bound
    finally:
        rabbitmqctl("delete_vhost", vhost)
