"""`make up` → through NGINX to both core instances → `make down`, on a stack of the test's own."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import shlex
import signal
import ssl
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import aiormq
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import MAX_MEDIA
from devstack import pids, start_nginx, supervisorctl
from scripts.otlp import OtlpReceiver, ReceivedSpan
from tests.faults import eventually
from tests.media import form, noisy_png, spoken, words_heard
from tests.payments_support import intent_event, signature
from tests.stacks import mailed_link, native_stack
from tests.test_dashboards import panel_queries

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e
# The browser front end allowed to call the stack's API, and the caller whose traces NGINX trusts.
APP_ORIGIN = "https://app.example.com"
TRACING_CALLER = "127.0.0.4"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    """The stack's trace collector: an OTLP/HTTP receiver in this process (in a thread of its
    own, so it outlives each test's event loop)."""
    receiver = OtlpReceiver()
    receiver.start_thread()
    yield receiver
    receiver.stop_thread()


@pytest.fixture(scope="module")
def stack(otlp: OtlpReceiver) -> Iterator[dict[str, Any]]:
    """The stack with its limits as shipped, tracing to `otlp`, a front end allowed by CORS and
    one trusted tracing caller."""
    with native_stack(
        {
            "PROMETHEUS_SCRAPE_INTERVAL": "1s",
            "ALERTMANAGER_GROUP_WAIT": "1s",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}",
            "OTEL_SDK_DISABLED": "false",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "CORS_ALLOWED_ORIGINS": f"{APP_ORIGIN},http://localhost:5173",
            "NGINX_TRUSTED_TRACE_CALLERS": f"{TRACING_CALLER}/32",
        }
    ) as running:
        yield running


def upstreams(stack: dict[str, Any]) -> list[str]:
    log = stack["config"].log_dir / "nginx-access.log"
    return [
        json.loads(line)["upstream_addr"] for line in log.read_text().splitlines() if line.strip()
    ]


async def test_make_up_prints_urls_and_status_passes(stack):
    assert f"{stack['base']}/api/docs" in stack["up_output"]
    assert stack["make"]("status").returncode == 0


async def test_make_up_from_a_private_folder_serves_the_api_through_nginx(stack):
    # The checkout sits in a 0700 folder; NGINX' workers still reach the instances.
    assert stat.S_IMODE(stack["config"].state_dir.parent.parent.stat().st_mode) == 0o700
    url = f"{stack['base']}/api/products?limit=1"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        assert "items" in await response.json()
    error_log = (stack["config"].log_dir / "nginx-error.log").read_text()
    assert "Permission denied" not in error_log


async def test_make_status_fails_loudly_when_the_api_does_not_answer(stack):
    # Every instance is healthy on its own port, but NGINX cannot reach any of them.
    config = stack["config"]
    start_nginx(config, [f"unix:{config.runtime_dir / 'nowhere.sock'}"])
    try:
        result = stack["make"]("status", check=False)
    finally:
        start_nginx(
            config, config.core_upstreams(), config.payments_upstreams(), config.gateway_upstreams()
        )
    assert result.returncode != 0
    assert "NOT READY  http://127.0.0.1:" in result.stdout
    assert "/api/products?limit=1 -> 503" in result.stdout
    assert str(config.log_dir / "nginx-error.log") in result.stderr

    async def api_answers() -> bool:
        url = f"{stack['base']}/api/products?limit=1"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == 200

    await eventually(api_answers, within=30, every=0.5)


async def test_through_nginx_to_both_instances(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value
        # make admin (twice: it is idempotent), then the admin's catalog writes are seen at
        # once on both instances
        email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        auth = await admin_headers(stack, http, email)
        assert (
            "admin ready"
            in stack["make"](
                "admin", f"EMAIL={email}", extra={"ADMIN_PASSWORD": "e2e password"}
            ).stdout
        )
        async with http.post(
            f"{base}/api/products",
            headers=auth,
            json={
                "sku": f"E2E-{uuid.uuid4().hex[:8]}",
                "name": "Kettle",
                "price_cents": 3999,
                "currency": "EUR",
                "stock": 5,
                "category": "kitchen",
            },
        ) as response:
            assert response.status == 201
            product = await response.json()
        url = f"{base}/api/products/{product['id']}"
        for _ in range(20):
            async with http.get(url) as response:
                assert (await response.json())["price_cents"] == 3999
        for price in (4100, 4200, 4300):
            async with http.patch(url, headers=auth, json={"price_cents": price}) as response:
                assert response.status == 200
            bodies = []
            for _ in range(10):
                async with http.get(url) as response:
                    bodies.append((await response.json())["price_cents"])
            assert bodies == [price] * 10
    instances = set(stack["config"].core_upstreams())
    assert len(instances) == 2
    assert instances <= set(upstreams(stack))


async def admin_headers(
    stack: dict[str, Any], http: aiohttp.ClientSession, email: str | None = None
) -> dict[str, str]:
    """Register a customer, make them an admin with `make admin` (refused without PROMOTE=1),
    log in: their auth header."""
    base = stack["base"]
    email = email or f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    async with http.post(
        f"{base}/api/auth/register",
        json={"email": email, "password": "e2e password", "name": "E2E"},
    ) as response:
        assert response.status == 201
        squatted = await response.json()
    password = {"ADMIN_PASSWORD": "e2e password"}
    refused = stack["make"]("admin", f"EMAIL={email}", check=False, extra=password)
    assert refused.returncode != 0 and "PROMOTE=1" in refused.stderr
    # an address nobody proved is never promoted: its owner opens the mailed link first
    unproven = stack["make"]("admin", f"EMAIL={email}", "PROMOTE=1", check=False, extra=password)
    assert unproven.returncode != 0 and "verified" in unproven.stderr
    await open_mailed_link(stack, http, email)
    made = stack["make"]("admin", f"EMAIL={email}", "PROMOTE=1", extra=password)
    assert "admin ready" in made.stdout
    # the registration's tokens died with the promotion: they never act as an admin
    old = {"Authorization": f"Bearer {squatted['access_token']}"}
    async with http.get(f"{base}/api/users/me", headers=old) as response:
        assert response.status == 401
    refresh = {"refresh_token": squatted["refresh_token"]}
    async with http.post(f"{base}/api/auth/refresh", json=refresh) as response:
        assert response.status == 401
    async with http.post(
        f"{base}/api/auth/login", json={"email": email, "password": "e2e password"}
    ) as response:
        return {"Authorization": f"Bearer {(await response.json())['access_token']}"}


async def place_order(
    stack: dict[str, Any], http: aiohttp.ClientSession, auth: dict[str, str], *, quantity: int
) -> dict[str, Any]:
    """A new product at 25.00 EUR, and an order of `quantity` of it."""
    base = stack["base"]
    product_body = {
        "sku": f"E2E-{uuid.uuid4().hex[:8]}",
        "name": "Teapot",
        "price_cents": 2500,
        "currency": "EUR",
        "stock": 5,
        "category": "kitchen",
    }
    async with http.post(f"{base}/api/products", headers=auth, json=product_body) as response:
        product = await response.json()
    order_body = {"items": [{"product_id": product["id"], "quantity": quantity}]}
    async with http.post(f"{base}/api/orders", headers=auth, json=order_body) as response:
        order: dict[str, Any] = await response.json()
    return order


async def pay_order(
    stack: dict[str, Any],
    http: aiohttp.ClientSession,
    auth: dict[str, str],
    order_id: str,
    payment_method: str = "tok_visa",
    *,
    wait: int,
) -> tuple[int, Any, dict[str, Any]]:
    """Pay for an order through NGINX with `Prefer: wait`: (status, headers, payment)."""
    async with http.post(
        f"{stack['base']}/api/orders/{order_id}/payments",
        headers={**auth, "Idempotency-Key": f"e2e-{uuid.uuid4()}", "Prefer": f"wait={wait}"},
        json={"payment_method": payment_method},
    ) as response:
        return response.status, response.headers, await response.json()


async def test_checkout_through_nginx_with_the_worker_make_up_started(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        auth = await admin_headers(stack, http)
        order = await place_order(stack, http, auth, quantity=2)
        status, headers, payment = await pay_order(stack, http, auth, order["id"], wait=10)
        assert status == 200, payment
        assert headers["Preference-Applied"] == "wait=10"
        assert (payment["status"], payment["amount_cents"]) == ("succeeded", 5000)
        async with http.get(f"{base}/api/orders/{order['id']}", headers=auth) as response:
            assert (await response.json())["status"] == "paid"
    conn = await asyncpg.connect(stack["config"].admin_database_url)
    try:
        assert await conn.fetchval("SELECT sum(amount_cents) FROM payments.ledger_entries") == 0
    finally:
        await conn.close()
    listed = stack["make"]("dlq")
    assert "0 message(s) listed" in listed.stderr


def only(spans: list[ReceivedSpan], what: str, **where: str) -> ReceivedSpan:
    """The one span matching every `where` (`name` matches by substring)."""
    found = [
        span
        for span in spans
        if all(
            value in span.name if key == "name" else getattr(span, key) == value
            for key, value in where.items()
        )
    ]
    assert len(found) == 1, f"{what}: {len(found)} spans match {where}"
    return found[0]


def sql_under(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[str]:
    """The statements run as children of `parent`, by their operation."""
    return [
        span.name
        for span in spans
        if span.parent_id == parent.span_id and span.attributes.get("db.system") == "postgresql"
    ]


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from `address` (127.0.0.0/8 is all local)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_search_and_the_assistant_through_nginx_follow_the_catalog(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        auth = await admin_headers(stack, http)
        body = {
            "sku": f"E2E-{uuid.uuid4().hex[:8]}",
            "name": "Storm hiking boots",
            "description": "Waterproof leather boots for mountain trails in the rain.",
            "price_cents": 14900,
            "currency": "EUR",
            "stock": 5,
            "category": "outdoor",
        }
        created = time.monotonic()
        async with http.post(f"{base}/api/products", headers=auth, json=body) as response:
            product = await response.json()
        query = {"q": "footwear for walking in the mountains when it rains", "limit": "5"}

        async def found() -> bool:
            async with http.get(f"{base}/api/ai/search", params=query, headers=auth) as response:
                assert response.status == 200, await response.text()
                items = (await response.json())["items"]
            return product["id"] in [item["product_id"] for item in items]

        await eventually(found, within=2.0, every=0.1)
        assert time.monotonic() - created < 2.0
        # the assistant streams its reply through NGINX as server-sent events
        async with http.post(
            f"{base}/api/ai/chat",
            json={"message": "boots for rainy mountain hikes"},
            headers={**auth, "Accept": "text/event-stream"},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            text = await response.text()
        assert text.startswith("event: products") and "event: done" in text
        assert product["id"] in text and "Storm hiking boots" in text
        async with http.delete(f"{base}/api/products/{product['id']}", headers=auth) as response:
            assert response.status == 204
        await eventually(lambda: _not(found), within=2.0, every=0.1)


async def _not(check: Any) -> bool:
    return not await check()


async def open_mailed_link(stack: dict[str, Any], http: aiohttp.ClientSession, email: str) -> None:
    """Open the verification link `make mail` shows for `email`, through NGINX."""
    link = mailed_link(stack, email)
    async with http.get(link) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["email_verified"] is True
    # the link's token is a credential: NGINX logs the request without it (NGINX writes the
    # line once the response is sent, so the client may read it first)
    log = stack["config"].log_dir / "nginx-access.log"
    await eventually(lambda: "/api/auth/verify-email?token=[redacted]" in log.read_text())
    assert link.split("token=", 1)[1] not in log.read_text()


async def register_through(stack: dict[str, Any], http: aiohttp.ClientSession) -> dict[str, Any]:
    """A new customer, registered through NGINX: the registration's body (tokens, user)."""
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    async with http.post(
        f"{stack['base']}/api/auth/register",
        json={"email": email, "password": "e2e password", "name": "E2E"},
    ) as response:
        assert response.status == 201
        account: dict[str, Any] = await response.json()
    return account


async def test_a_checkout_is_pushed_to_the_buyers_sockets_through_nginx(stack):
    base, ws_base = stack["base"], stack["base"].replace("http://", "ws://")
    assert len(stack["config"].gateway_upstreams()) == 2
    async with aiohttp.ClientSession() as http:
        buyer = await admin_headers(stack, http)
        token = buyer["Authorization"].removeprefix("Bearer ")
        other = await register_through(stack, http)
        # two tabs of the buyer (one with its token in the query, as a browser does); another
        # customer's socket
        tabs = [
            await http.ws_connect(f"{ws_base}/ws", headers=buyer),
            await http.ws_connect(f"{ws_base}/ws", params={"access_token": token}),
        ]
        stranger = await http.ws_connect(
            f"{ws_base}/ws", headers={"Authorization": f"Bearer {other['access_token']}"}
        )
        order = await place_order(stack, http, buyer, quantity=1)
        started = time.monotonic()
        status, _, payment = await pay_order(stack, http, buyer, order["id"], wait=0)
        assert status in (201, 202)
        for tab in tabs:
            pushed = {}
            while len(pushed) < 2:
                message = await tab.receive(timeout=1.0)
                body = json.loads(message.data)
                pushed[body["type"]] = body
            assert time.monotonic() - started < 1.0
            assert set(pushed) == {"payment.succeeded", "order.paid"}
            assert pushed["payment.succeeded"]["data"]["payment_id"] == payment["id"]
            assert pushed["order.paid"]["data"]["order_id"] == order["id"]
        with pytest.raises(TimeoutError):
            await stranger.receive(timeout=0.5)
        # one tab goes away; while it is away the buyer cancels another order; back with the
        # last event it had, it gets what it missed, once
        last = pushed["order.paid"]["id"]
        await tabs[1].close()
        missed = await place_order(stack, http, buyer, quantity=1)
        async with http.post(f"{base}/api/orders/{missed['id']}/cancel", headers=buyer) as response:
            assert response.status == 200
        cancelled = json.loads((await tabs[0].receive(timeout=2.0)).data)
        assert cancelled["type"] == "order.cancelled"
        assert cancelled["data"]["order_id"] == missed["id"]
        back = await http.ws_connect(
            f"{ws_base}/ws", params={"access_token": token, "last_event_id": last}
        )
        assert json.loads((await back.receive(timeout=2.0)).data) == cancelled
        with pytest.raises(TimeoutError):
            await back.receive(timeout=0.5)
        # logged out: the token is refused before the upgrade
        async with http.post(f"{base}/api/auth/logout", headers=buyer) as response:
            assert response.status == 204
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{ws_base}/ws", headers=buyer)
        assert refused.value.status == 401
        for socket in (tabs[0], back, stranger):
            await socket.close()
    # the query's token never reaches the access log
    access_log = (stack["config"].log_dir / "nginx-access.log").read_text()
    assert token not in access_log and "access_token=[redacted]" in access_log


async def test_one_trace_follows_a_checkout_across_every_hop(stack, otlp):
    # A trusted caller starts the trace; NGINX passes its `traceparent` through to core.
    trace_id, client_span = os.urandom(16).hex(), os.urandom(8).hex()
    async with from_address(TRACING_CALLER) as http:
        auth = await admin_headers(stack, http)
        order = await place_order(stack, http, auth, quantity=1)
        socket = await http.ws_connect(stack["base"].replace("http", "ws", 1) + "/ws", headers=auth)
        async with http.post(
            f"{stack['base']}/api/orders/{order['id']}/payments",
            headers={
                **auth,
                "Idempotency-Key": f"e2e-{uuid.uuid4()}",
                "Prefer": "wait=10",
                "traceparent": f"00-{trace_id}-{client_span}-01",
            },
            json={"payment_method": "tok_visa"},
        ) as response:
            assert (await response.json())["status"] == "succeeded"
            request_id = response.headers["X-Request-ID"]
            assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        pushed = {json.loads((await socket.receive(timeout=2)).data)["type"] for _ in range(2)}
        assert pushed == {"payment.succeeded", "order.paid"}
        await socket.close()

    hops = {
        ("server", "core"),
        ("producer", "core"),
        ("consumer", "payments"),
        ("producer", "payments"),
        ("consumer", "core"),
        ("consumer", "ai"),
        ("consumer", "gateway"),
        ("internal", "gateway"),
    }

    def every_hop_exported() -> list[ReceivedSpan] | None:
        # Each process exports on its own schedule and a span is queued after its children, so
        # the trace is whole once every hop is in and every span's parent is too.
        spans = otlp.trace(trace_id)
        ids = {span.span_id for span in spans} | {client_span}
        whole = all(span.parent_id in ids for span in spans)
        return spans if whole and hops <= {(span.kind, span.service) for span in spans} else None

    spans = await eventually(every_hop_exported, within=20)
    # core's server span, child of the client's span, tagged with the request id
    server = only(spans, "core's server span", kind="server", service="core")
    assert server.parent_id == client_span
    assert server.name == "POST /api/orders/{id}/payments"
    assert server.attributes["relais.request_id"] == request_id
    assert {"INSERT", "COMMIT;"} <= set(sql_under(spans, server))
    # the outbox relay published the charge command later, under the request's context
    charge = only(
        spans, "the relay's publish", kind="producer", service="core", name="payment.charge"
    )
    assert charge.parent_id == server.span_id
    # the worker consumed it, ran its statements (the ledger's INSERTs) and emitted the event
    worker = only(spans, "the worker's consume", kind="consumer", service="payments")
    assert worker.parent_id == charge.span_id
    assert "INSERT" in sql_under(spans, worker)
    event = only(spans, "the worker's publish", kind="producer", service="payments")
    assert "payment.succeeded" in event.name and event.parent_id == worker.span_id
    # core consumed the event and settled the order in its database
    settled = only(spans, "core's consume", kind="consumer", service="core")
    assert settled.parent_id == event.span_id
    assert "COMMIT;" in sql_under(spans, settled)
    # the settled order was announced through the outbox, and the AI worker learned from it
    paid = only(spans, "the relay's announce", kind="producer", service="core", name="order.paid")
    assert paid.parent_id == settled.span_id
    learned = only(spans, "the AI worker's consume", kind="consumer", service="ai")
    assert learned.parent_id == paid.span_id
    # the gateway took both events from its queue and pushed them to the buyer's socket
    by_id = {span.span_id: span for span in spans}
    for name, announced in (("payment.succeeded", event), ("order.paid", paid)):
        push = only(spans, f"the push of {name}", service="gateway", name=f"push {name}")
        delivered = by_id[push.parent_id]
        assert (delivered.kind, delivered.service) == ("consumer", "gateway")
        assert delivered.parent_id == announced.span_id
        assert push.attributes["relais.sockets"] == 1
    # the access-log lines of NGINX and of core lead to the trace
    nginx_log = (stack["config"].log_dir / "nginx-access.log").read_text().splitlines()
    edge = json.loads(next(line for line in nginx_log if request_id in line))
    assert edge["traceparent"] == f"00-{trace_id}-{client_span}-01"
    assert edge["traceresponse"].startswith(f"00-{trace_id}-{server.span_id}-")

    def core_lines() -> list[dict[str, Any]]:  # access lines are written in batches
        return [
            json.loads(line)
            for path in stack["config"].log_dir.glob("core-*.log")
            for line in path.read_text().splitlines()
            if request_id in line
        ]

    assert [(line["trace_id"], line["span_id"]) for line in await eventually(core_lines)] == [
        (trace_id, server.span_id)
    ]


async def test_latency_exemplars_lead_to_exported_traces(stack, otlp):
    api = f"http://127.0.0.1:{stack['config'].prometheus_port}/api/v1/query_exemplars"
    query = 'relais_http_request_duration_seconds_bucket{route="/api/orders/{id}/payments"}'

    async def exemplar_traces() -> set[str]:
        now = time.time()
        params = {"query": query, "start": str(now - 600), "end": str(now)}
        async with aiohttp.ClientSession() as http, http.get(api, params=params) as response:
            body = await response.json()
        return {
            exemplar["labels"]["trace_id"]
            for series in body["data"]
            for exemplar in series["exemplars"]
        }

    traces = await eventually(exemplar_traces, within=20, every=0.5)
    exported = {span.trace_id for span in otlp.spans if span.kind == "server"}
    assert traces <= exported


async def test_prometheus_scrapes_every_process_and_loads_the_rules(stack):
    config = stack["config"]
    api = f"http://127.0.0.1:{config.prometheus_port}/api/v1"

    async def query(http: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        async with http.get(f"{api}/query", params={"query": expr}) as response:
            result: list[dict[str, Any]] = (await response.json())["data"]["result"]
            return result

    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            while True:
                up = await query(http, 'up{job=~"relais-.*"}')
                consumers = await query(http, "sum by (queue) (relais_consumers_running)")
                if len(up) == 6 and len(consumers) == 4:
                    break
                await asyncio.sleep(0.5)
        assert {row["metric"]["service"] for row in up} == {"core", "payments", "ai", "gateway"}
        assert all(row["value"][1] == "1" for row in up)
        assert {row["metric"]["queue"]: row["value"][1] for row in consumers} == {
            "core.payment-events": "2",
            "payments.commands": "1",
            "ai.catalog": "1",
            "gateway.journal": "2",  # one receives, the other waits its turn
        }
        async with http.get(f"{api}/rules") as response:
            groups = (await response.json())["data"]["groups"]
        exporters = await query(
            http, 'min by (job) (up{job=~"nginx|postgres|redis|process|backups"})'
        )
        assert {row["metric"]["job"]: row["value"][1] for row in exporters} == {
            "nginx": "1",
            "postgres": "1",
            "redis": "1",
            "process": "1",
            "backups": "1",
        }
        # the CPU of each group of processes (what `make capacity` reads): each service's, and
        # the servers'
        found = await query(http, "sum by (groupname) (namedprocess_namegroup_num_procs)")
        running = {row["metric"]["groupname"] for row in found if row["value"][1] != "0"}
        assert {"core", "payments", "ai", "gateway", "nginx", "postgres", "redis-server"} <= running
        healthy = await query(http, "nginx_up or pg_up or redis_up")
        assert len(healthy) == 3 and all(row["value"][1] == "1" for row in healthy)
        # the exporters' metrics the alert rules use exist (ours are checked without a stack)
        async with http.get(f"{api}/label/__name__/values") as response:
            names = set((await response.json())["data"])
        rules = (ROOT / "infra" / "prometheus" / "rules" / "relais.rules.yml").read_text()
        used = set(re.findall(r"\b((?:rabbitmq|pg|redis|nginx)_[a-z_]+)\b", rules))
        assert used and used <= names, sorted(used - names)
        assert {group["name"] for group in groups} == {
            "relais-sli",
            "relais-slo",
            "relais-operations",
            "relais-data-safety",
            "relais-ai",
            "relais-gateway",
        }
        async with http.get(f"{api}/alertmanagers") as response:
            managers = (await response.json())["data"]["activeAlertmanagers"]
        assert [m["url"] for m in managers] == [
            f"http://127.0.0.1:{config.alertmanager_port}/api/v2/alerts"
        ]
    assert f"http://127.0.0.1:{config.prometheus_port}/" in stack["up_output"]


async def test_every_dashboard_panel_returns_data(stack):
    # After the tests above drove reads, orders, a checkout and its messages through the stack;
    # a new series needs two scrapes and a rule evaluation before every panel can show it.
    api = f"http://127.0.0.1:{stack['config'].prometheus_port}/api/v1/query"
    empty: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(40):
            empty = []
            for title, expr in panel_queries():
                async with http.get(api, params={"query": expr}) as response:
                    body = await response.json()
                    assert response.status == 200, f"{title}: {body.get('error')}"
                if not body["data"]["result"]:
                    empty.append(title)
            if not empty:
                break
            await asyncio.sleep(0.5)
    assert not empty, f"panels without data: {empty}"


async def test_edge_behaviour(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/auth/register",
            data=io.BytesIO(b"x" * (1024 * 1024 + 10)),
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 413
            assert response.content_type == "application/problem+json"
        for path in ("/metrics", "/api/metrics", "/health/ready"):
            async with http.get(f"{base}{path}") as response:
                assert response.status == 404
        async with http.get(
            f"{base}/api/openapi.json", headers={"Accept-Encoding": "gzip"}
        ) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert (await response.json())["openapi"].startswith("3.")
        async with http.get(
            f"{base}/api/nope", headers={"X-Request-ID": "e2e-trace-000001"}
        ) as response:
            assert response.status == 404
            assert response.headers.getall("X-Request-ID") == ["e2e-trace-000001"]
            assert (await response.json())["request_id"] == "e2e-trace-000001"
        tls = ssl.create_default_context(cafile=str(stack["config"].key_dir / "tls.crt"))
        async with http.get(f"{stack['tls']}/api/products", ssl=tls) as response:
            assert response.status == 200
            assert response.headers["X-Frame-Options"] == "DENY"
    log_lines = (stack["config"].log_dir / "nginx-access.log").read_text().splitlines()
    entry = json.loads(next(line for line in log_lines if "e2e-trace-000001" in line))
    assert entry["request_id"] == "e2e-trace-000001" and "upstream_response_time" in entry


async def test_an_outside_caller_does_not_choose_our_sampling(stack, otlp):
    trace_id = os.urandom(16).hex()
    forced = {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    url = f"{stack['base']}/api/products"
    # from 127.0.0.1: not a trusted caller
    async with aiohttp.ClientSession() as http, http.get(url, headers=forced) as response:
        assert response.status == 200
        answered = response.headers["traceresponse"]
    # NGINX started a new trace: the caller's id and its sampled flag went nowhere
    assert answered.split("-")[1] != trace_id
    await asyncio.sleep(0.5)  # the batch processor's delay, and more
    assert otlp.trace(trace_id) == []


async def test_a_load_test_s_marks_reach_the_services_through_nginx(stack, otlp):
    """A request marked synthetic (in its baggage, or by the header) is counted apart and its
    span says so, from a caller NGINX does not trust with trace context."""
    config = stack["config"]
    route = "/api/products/{id}"

    async def counted(http: aiohttp.ClientSession) -> dict[str, float]:
        found = {"real": 0.0, "synthetic": 0.0}
        for name, _, _, metrics_port in config.processes():
            if not name.startswith("core-"):
                continue
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = sample.labels
                    if sample.name == "relais_http_requests_total" and labels["route"] == route:
                        found[labels["traffic"]] += sample.value
        return found

    url = f"{stack['base']}/api/products/{uuid.uuid4()}"
    marks = [
        {"baggage": "synthetic=true"},
        {"baggage": "tenant=e2e, synthetic=true;source=locust"},
        {"X-Relais-Synthetic": "1"},
        {},
        {"baggage": "synthetic=false"},
    ]
    async with aiohttp.ClientSession() as http:
        before = await counted(http)
        answered = []
        for headers in marks:
            async with http.get(url, headers=headers) as response:
                assert response.status == 404
                answered.append(response.headers["traceresponse"].split("-")[1])
        after = await counted(http)  # a scrape applies the observations queued
    assert after["synthetic"] - before["synthetic"] == 3
    assert after["real"] - before["real"] == 2

    def server_spans() -> list[ReceivedSpan] | None:
        spans = [
            next((span for span in otlp.trace(trace) if span.kind == "server"), None)
            for trace in answered
        ]
        return spans if all(spans) else None  # type: ignore[return-value]

    spans = await eventually(server_spans, within=10)
    marked = [span.attributes.get("relais.synthetic") for span in spans]
    assert marked == [True, True, True, None, None]


async def test_the_edge_headers(stack):
    base, tls = stack["base"], stack["tls"]
    context = ssl.create_default_context(cafile=str(stack["config"].key_dir / "tls.crt"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{tls}/api/products", ssl=context) as response:
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        async with http.get(f"{base}/api/products") as response:
            assert "Strict-Transport-Security" not in response.headers
            assert "Origin" in response.headers.getall("Vary")
        body = {"email": f"e2e-{uuid.uuid4().hex[:8]}@example.com", "password": "e2e password"}
        async with http.post(f"{base}/api/auth/register", json={**body, "name": "N"}) as response:
            assert response.status == 201
            assert response.headers["Cache-Control"] == "no-store"
        async with http.post(f"{base}/api/auth/login", json=body) as response:
            assert response.headers["Cache-Control"] == "no-store"
            refresh = {"refresh_token": (await response.json())["refresh_token"]}
        async with http.post(f"{base}/api/auth/refresh", json=refresh) as response:
            assert response.headers["Cache-Control"] == "no-store"
        # NGINX' own problem bodies stay JSON whatever the path holds
        async with http.get(f"{base}/nope%22,%22evil%22:%22x") as response:
            assert response.status == 404
            problem = json.loads(await response.read())
            assert set(problem) == {"type", "title", "status", "detail", "instance", "request_id"}
            assert "evil" not in problem
        # an undeclared method: a problem listing the path's methods, from whoever answers
        async with http.request("TRACE", f"{base}/api/products") as response:
            assert response.status == 405
            assert response.content_type == "application/problem+json"
            assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


async def test_webhooks_need_the_secret_make_up_generated(stack):
    secret = (stack["config"].key_dir / "webhook-secret").read_text().strip()
    assert secret.startswith("whsec_") and secret != "whsec_relais_development"
    payload = intent_event(f"evt_{uuid.uuid4().hex}", "charge.dispute.created", str(uuid.uuid4()))
    url = f"{stack['base']}/api/payments/webhooks/sandbox"
    async with aiohttp.ClientSession() as http:
        for key, expected in (("whsec_relais_development", 400), (secret, 200)):
            headers = {"Stripe-Signature": signature(payload, secret=key)}
            async with http.post(url, data=payload, headers=headers) as response:
                assert response.status == expected, await response.text()


async def test_the_docs_page_loads_only_its_own_assets(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/docs") as response:
            assert response.status == 200
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            async with http.get(f"{base}/api/docs/static/{asset}") as response:
                assert response.status == 200
        for unused in ("index.html", "oauth2-redirect.html", "swagger-initializer.js"):
            async with http.get(f"{base}/api/docs/static/{unused}") as response:
                assert response.status == 404


async def test_cors_admits_only_the_listed_origins(stack):
    base = stack["base"]
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"}
    async with aiohttp.ClientSession() as http:
        # a listed origin: its preflight is answered at the edge, its requests carry CORS
        async with http.options(
            f"{base}/api/orders", headers={"Origin": APP_ORIGIN, **preflight}
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
            assert "Origin" in response.headers.getall("Vary")
        async with http.get(f"{base}/api/products", headers={"Origin": APP_ORIGIN}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
            assert "Location" in response.headers["Access-Control-Expose-Headers"]
        # any other origin: no CORS header at all, and its preflight is not approved
        for origin in ("https://evil.example.com", f"{APP_ORIGIN}.evil.example.com", "null"):
            async with http.get(f"{base}/api/products", headers={"Origin": origin}) as response:
                assert response.status == 200
                assert not any(name.startswith("Access-Control-") for name in response.headers)
                assert "Origin" in response.headers.getall("Vary")
            async with http.options(
                f"{base}/api/orders", headers={"Origin": origin, **preflight}
            ) as response:
                assert response.status != 204
                assert not any(name.startswith("Access-Control-") for name in response.headers)


async def test_one_address_holds_a_bounded_number_of_connections(stack):
    limit = stack["config"].nginx_conn_limit  # NGINX_CONN_LIMIT as shipped
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    port = stack["config"].nginx_port
    # A request whose body never comes: NGINX holds the connection while it waits for it.
    request = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    try:
        for _ in range(limit):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=("127.0.0.5", 0)
            )
            writer.write(request)
            held.append((reader, writer))
        await asyncio.sleep(0.2)
        url = f"{stack['base']}/api/products"
        async with from_address("127.0.0.5") as http, http.get(url) as response:
            assert response.status == 429
        # another address is not affected
        async with from_address("127.0.0.6") as other, other.get(url) as response:
            assert response.status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_make_up_twice_is_harmless(stack):
    before = pids(stack["config"])
    result = stack["make"]("up")
    assert "Relais is up" in result.stdout
    assert pids(stack["config"]) == before


async def test_a_killed_instance_and_worker_are_back_and_nothing_fails(stack):
    config, base = stack["config"], stack["base"]
    before = pids(config)
    os.kill(before["core-1"], signal.SIGKILL)
    os.kill(before["payments-1"], signal.SIGKILL)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(60):
            async with http.get(f"{base}/api/products?limit=5") as response:
                statuses.append(response.status)
        assert statuses == [200] * 60
        # A payment asked for while the worker is down is paid once supervisord restarts it.
        auth = await admin_headers(stack, http)
        order = await place_order(stack, http, auth, quantity=1)
        status, _, payment = await pay_order(stack, http, auth, order["id"], wait=30)
        assert (status, payment["status"]) == (200, "succeeded"), payment

    def restarted() -> bool:
        now = pids(config)
        return all(now.get(name) not in (None, before[name]) for name in ("core-1", "payments-1"))

    # Back without a second `make up`: new processes, and the stack reports ready.
    await eventually(lambda: asyncio.to_thread(restarted), within=30, every=0.5)
    await eventually(
        lambda: asyncio.to_thread(lambda: stack["make"]("status", check=False).returncode == 0),
        within=30,
        every=0.5,
    )


async def test_per_ip_rate_limit_answers_429(stack):
    base = stack["base"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:

        async def hit() -> tuple[int, str | None, str]:
            async with http.get(f"{base}/api/nothing-here") as response:
                return response.status, response.headers.get("Retry-After"), response.content_type

        results = await asyncio.gather(*(hit() for _ in range(1500)))
    limited = [r for r in results if r[0] == 429]
    assert limited, "no request was rate limited"
    assert all(retry == "1" and kind == "application/problem+json" for _, retry, kind in limited)


async def test_one_address_exhausting_its_write_budget_leaves_others_theirs(stack):
    # NGINX reaches the instances over Unix sockets (the default) and names the client in
    # X-Real-IP; the shipped write limit counts per client address, never under one key.
    base, limit = stack["base"], 300  # WRITE_RATE_LIMIT as shipped: 300/minute
    async with from_address("127.0.0.2") as noisy:
        statuses = []
        for _ in range(limit + 5):
            async with noisy.post(f"{base}/api/auth/login", json={}) as response:
                statuses.append(response.status)
        assert statuses[:limit] == [422] * limit
        assert statuses[limit:] == [429] * 5
    async with from_address("127.0.0.3") as other:
        body = {"email": f"e2e-{uuid.uuid4().hex[:8]}@example.com", "password": "e2e password"}
        async with other.post(
            f"{base}/api/auth/register", json={**body, "name": "Other client"}
        ) as response:
            assert response.status == 201, await response.text()


async def test_each_part_holds_only_the_rights_it_needs(stack):
    config = stack["config"]
    async with aiohttp.ClientSession() as http:
        body = {"email": f"e2e-{uuid.uuid4().hex[:8]}@example.com", "password": "not it"}
        async with http.post(f"{stack['base']}/api/auth/login", json=body) as response:
            assert response.status == 401  # audited, with its request's and its trace's ids
            request_id = response.headers["X-Request-ID"]
            trace_id = response.headers["traceresponse"].split("-")[1]
    # core's database role neither owns the payments schema nor may read it, and may only add
    # to the audit log
    core = await asyncpg.connect(config.database_url, server_settings={"search_path": "core"})
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await core.fetchval("SELECT count(*) FROM payments.ledger_entries")
        found = await core.fetchrow(
            "SELECT id, request_id, trace_id FROM audit_log WHERE subject = $1",
            body["email"].lower(),
        )
        assert found is not None
        assert (found["request_id"], found["trace_id"]) == (request_id, trace_id)
        entry = found["id"]
        for statement in (
            "UPDATE audit_log SET action = 'forged' WHERE id = $1",
            "DELETE FROM audit_log WHERE id = $1",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await core.execute(statement, *([entry] if "$1" in statement else []))
    finally:
        await core.close()
    admin = await asyncpg.connect(config.admin_database_url)
    try:
        owners = await admin.fetch(
            """SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'payments'
               UNION SELECT tableowner FROM pg_tables WHERE schemaname = 'payments'"""
        )
        assert [row["owner"] for row in owners] == [config.payments_owner_user]
        monitor = await admin.fetchrow(
            "SELECT rolsuper, pg_has_role(rolname, 'pg_monitor', 'member') AS monitors "
            "FROM pg_roles WHERE rolname = $1",
            config.monitor_database_user,
        )
        assert (monitor["rolsuper"], monitor["monitors"]) == (False, True)
    finally:
        await admin.close()
    # the PostgreSQL exporter connects as that monitoring role, not as a superuser
    pid = pids(config)["postgres-exporter"]
    environ = Path(f"/proc/{pid}/environ")
    environment = (await asyncio.to_thread(environ.read_bytes)).split(b"\0")
    [dsn] = [item for item in environment if item.startswith(b"DATA_SOURCE_NAME=")]
    assert f"//{config.monitor_database_user}:".encode() in dsn
    # core's broker user cannot announce that a payment succeeded; the worker's can
    for user, allowed in (
        (config.rabbitmq_core_user, False),
        (config.rabbitmq_payments_user, True),
    ):
        connection = await aio_pika.connect(config.amqp_url_of(user))
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
            events = await channel.get_exchange("relais.events")
            message = aio_pika.Message(b"{}", message_id=str(uuid.uuid4()))
            if allowed:
                await events.publish(message, routing_key="payment.probe")
            else:
                with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                    await events.publish(message, routing_key="payment.succeeded")
        finally:
            await connection.close()


# --- First contact: what a new user and an operator meet --------------------------------


async def get_json(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Any:
    async with http.get(url, **kwargs) as response:
        assert response.status == 200, (url, await response.text())
        return await response.json()


async def test_the_api_index_docs_and_problem_pages_through_nginx(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        index = await get_json(http, f"{base}/api/")
        for url in index["links"].values():
            assert url.startswith(base), url  # the stack's own public address
            async with http.get(url) as response:
                assert response.status == 200, url
        async with http.get(f"{base}/api/docs/") as response:
            assert response.status == 200 and "swagger-ui" in await response.text()
        # NGINX' own problems and the instances' point at pages that exist
        for url in (f"{base}/nowhere", f"{base}/api/nowhere", f"{base}/api/users/me"):
            async with http.get(url) as response:
                problem = await response.json()
            assert problem["type"].startswith(f"{base}/api/problems/"), problem
            async with http.get(problem["type"]) as page:
                assert page.status == 200 and problem["title"] in await page.text()


async def test_alert_runbook_urls_lead_to_the_runbooks_through_nginx(stack):
    config, base = stack["config"], stack["base"]
    async with aiohttp.ClientSession() as http:
        rules = await get_json(http, f"http://127.0.0.1:{config.prometheus_port}/api/v1/rules")
        urls = {
            rule["annotations"]["runbook_url"]
            for group in rules["data"]["groups"]
            for rule in group["rules"]
            if rule["type"] == "alerting"
        }
        assert len(urls) >= 10
        for url in urls:
            assert url.startswith(f"{base}/docs/runbooks/"), url
            async with http.get(url) as response:
                assert response.status == 200, url
                assert response.content_type == "text/plain"
                assert (await response.text()).startswith("# ")
        # the folder `make up` prints lists them
        async with http.get(f"{base}/docs/runbooks/") as response:
            assert response.status == 200
            listing = await response.text()
        assert all(url.rsplit("/", 1)[1] in listing for url in urls), listing


async def test_make_status_covers_every_program_and_the_datastores(stack):
    config = stack["config"]
    result = stack["make"]("status")
    for name in ("PostgreSQL", "Redis", "RabbitMQ", f":{config.alert_receiver_port}/health"):
        assert name in result.stdout, name
    assert f":{config.redis_exporter_port}/metrics -> 200" in result.stdout
    supervisorctl(config, "stop", "redis-exporter")
    try:
        down = stack["make"]("status", check=False)
        assert down.returncode != 0
        assert "redis-exporter stopped" in " ".join(down.stdout.split())
    finally:
        supervisorctl(config, "start", "redis-exporter")
    await eventually(
        lambda: asyncio.to_thread(lambda: stack["make"]("status", check=False).returncode == 0),
        within=30,
        every=0.5,
    )


async def test_make_logs_reads_one_programs_last_lines(stack):
    result = stack["make"]("logs", "SERVICE=core-1", "LINES=3")
    headers = [line for line in result.stdout.splitlines() if line.startswith("==> ")]
    assert len(headers) == 1 and headers[0].endswith("core-1.log <==")
    assert len(result.stdout.splitlines()) <= 4
    assert stack["make"]("logs", "SERVICE=nothing-here", check=False).returncode != 0


async def test_make_admin_takes_any_password_from_the_environment_and_never_prints_it(stack):
    base, email = stack["base"], f"quoted-{uuid.uuid4().hex[:8]}@example.com"
    password = 'it\'s a $ecret, "quoted" $$ password'
    made = stack["make"]("admin", f"EMAIL={email}", extra={"ADMIN_PASSWORD": password})
    assert "admin ready" in made.stdout
    async with aiohttp.ClientSession() as http:
        login = {"email": email, "password": password}
        async with http.post(f"{base}/api/auth/login", json=login) as response:
            assert response.status == 200
    # too short: refused without printing it
    short = stack["make"](
        "admin", "EMAIL=x@example.com", check=False, extra={"ADMIN_PASSWORD": "s$h'0rt"}
    )
    assert short.returncode != 0 and "password" in short.stderr
    assert "s$h'0rt" not in short.stdout + short.stderr
    # on make's command line it would be mangled: refused
    cli = stack["make"]("admin", f"EMAIL={email}", "PASSWORD=it's", check=False)
    assert cli.returncode == 2 and "ADMIN_PASSWORD" in cli.stderr
    # another password for an existing admin: only with RESET_PASSWORD=1
    other = {"ADMIN_PASSWORD": "another long password"}
    kept = stack["make"]("admin", f"EMAIL={email}", check=False, extra=other)
    assert kept.returncode != 0 and "RESET_PASSWORD=1" in kept.stderr
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/auth/login", json=login) as response,
    ):
        assert response.status == 200  # unchanged
    assert (
        "admin ready"
        in stack["make"]("admin", f"EMAIL={email}", "RESET_PASSWORD=1", extra=other).stdout
    )


def first_session() -> str:
    """The README's copy-and-paste session, as written."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- first-session -->", 1)[1].split("<!-- /first-session -->", 1)[0]
    return block.split("```sh\n", 1)[1].rsplit("```", 1)[0]


async def test_make_seed_then_the_readmes_first_session_pays_an_order(stack):
    # the README's first block: `export ADMIN_PASSWORD=…`, then `make seed`
    readme = (ROOT / "README.md").read_text()
    [export] = re.findall(r"^export ADMIN_PASSWORD=.+$", readme, re.M)
    secret = {"ADMIN_PASSWORD": shlex.split(export.removeprefix("export ADMIN_PASSWORD="))[0]}
    first = stack["make"]("seed", extra=secret)
    assert "8 created, 0 already there" in first.stdout, first.stdout + first.stderr
    again = stack["make"]("seed", extra=secret)
    assert "0 created, 8 already there" in again.stdout
    async with aiohttp.ClientSession() as http:
        demo = await get_json(http, f"{stack['base']}/api/products?q=teapot")
        assert any(item["sku"] == "DEMO-TEAPOT" for item in demo["items"])
    script = first_session().replace("http://127.0.0.1:8080", stack["base"])
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", f"{export}\n{script}"],
        env=stack["env"],
        cwd=stack["checkout"],  # where `make mail` finds the stack's outbox
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "paid", result.stdout
    assert re.match(r"(?i)location: /api/payments/[0-9a-f-]{36}/refunds/[0-9a-f-]{36}", lines[1])
    assert lines[2] == "partially_refunded"
    report = json.loads(lines[3])
    [eur] = [c for c in report["currencies"] if c["currency"] == "EUR"]
    assert eur["captured_cents"] >= 2400 and eur["refunded_cents"] >= 1200


async def test_make_sandbox_settle_pays_a_stuck_order(stack):
    base = stack["base"]
    async with aiohttp.ClientSession() as http:
        auth = await admin_headers(stack, http)
        order = await place_order(stack, http, auth, quantity=1)
        status, _, payment = await pay_order(stack, http, auth, order["id"], "tok_timeout", wait=1)
        assert (status, payment["status"]) == (202, "processing")
        settled = stack["make"]("sandbox-settle", f"ID={payment['id']}", "OUTCOME=succeeded")
        assert "succeeded sent by the sandbox's webhook" in settled.stdout

        async def paid() -> bool:
            body = await get_json(http, f"{base}/api/orders/{order['id']}", headers=auth)
            return body["status"] == "paid" and body["payments"] == [
                {"id": payment["id"], "status": "succeeded"}
            ]

        await eventually(paid, within=15)


async def test_a_second_make_up_keeps_the_configuration_a_restart_applies_it(stack):
    config = stack["config"]
    conf = config.run_dir / "nginx" / "nginx.conf"
    before = conf.read_text()
    assert f"burst={config.nginx_rate_burst} " in before
    again = stack["make"]("up", extra={"NGINX_RATE_BURST": "7", "NGINX_RATE_LIMIT": "1"})
    assert "not applied from your environment: nginx_rate_burst, nginx_rate_limit" in again.stdout
    assert conf.read_text() == before
    restarted = stack["make"]("restart", extra={"NGINX_RATE_BURST": "450"})
    assert "Relais is up" in restarted.stdout
    assert "burst=450 " in conf.read_text()
    assert json.loads(config.saved_path.read_text())["nginx_rate_burst"] == 450


async def test_the_first_dead_letter_of_a_fresh_worker_fires_its_alert_and_reaches_the_receiver(
    stack,
):
    # The worker restarted with the stack just above: this is its first dead letter.
    config = stack["config"]
    connection = await aio_pika.connect(config.amqp_url)
    poison_id = f"poison-{uuid.uuid4()}"
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("relais.commands")
        await exchange.publish(
            aio_pika.Message(b'{"type": "payment.charge", "version": 99}', message_id=poison_id),
            routing_key="payment.charge",
        )
    finally:
        await connection.close()
    prometheus = f"http://127.0.0.1:{config.prometheus_port}"

    async def firing() -> bool:
        async with aiohttp.ClientSession() as http:
            alerts = (await get_json(http, f"{prometheus}/api/v1/alerts"))["data"]["alerts"]
        return any(
            a["labels"]["alertname"] == "MessagesDeadLettered" and a["state"] == "firing"
            for a in alerts
        )

    await eventually(firing, within=60, every=1)

    def noticed() -> bool:
        shown = stack["make"]("alerts").stdout
        return "to tickets" in shown and "MessagesDeadLettered (ticket)" in shown

    await eventually(lambda: asyncio.to_thread(noticed), within=60, every=1)
    shown = stack["make"]("alerts").stdout
    assert "firing now" in shown and "MessagesDeadLettered" in shown.split("last notifications")[0]
    listed = stack["make"]("dlq", f"ID={poison_id}").stdout.splitlines()
    [dead] = [json.loads(line) for line in listed if line.startswith("{")]
    assert dead["message_id"] == poison_id and dead["reason"].startswith("UnknownContract")
    assert dead["age_seconds"] >= 0


async def test_analyses_through_nginx_reach_the_ai_worker_in_one_trace(stack, otlp):
    base = stack["base"]
    trace_id, client_span = os.urandom(16).hex(), os.urandom(8).hex()
    traced = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    async with from_address(TRACING_CALLER) as http:
        auth = await admin_headers(stack, http)
        review = {"text": "What a wonderful teapot! It keeps the tea hot and looks lovely."}
        async with http.post(
            f"{base}/api/ai/text/analyze", json=review, headers={**auth, **traced}
        ) as response:
            assert response.status == 200, await response.text()
            analysis = await response.json()
        assert analysis["language"] == "en" and analysis["sentiment"]["label"] == "positive"
        # a 5 MB image: past the 1 MiB of other routes, by claim check to the worker
        big = noisy_png(1300)
        assert 4_000_000 < len(big) < MAX_MEDIA
        async with http.post(
            f"{base}/api/ai/image/analyze", data=form("image", big), headers=auth
        ) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["width"] == 1300
        async with http.post(
            f"{base}/api/ai/audio/analyze", data=form("audio", spoken()), headers=auth
        ) as response:
            assert response.status == 200, await response.text()
            audio = await response.json()
        assert words_heard(audio["transcript"]) >= 0.6 and audio["sentiment"]["label"] == "positive"
        # NGINX takes up to 10 MiB (and the form around it) on the media routes only
        for route, size, limit in (
            ("/api/ai/image/analyze", MAX_MEDIA + 2 * 2**20, "10 MiB"),
            ("/api/ai/text/analyze", 2 * 2**20, "1 MiB"),
        ):
            async with http.post(
                f"{base}{route}", data=form("image", b"\0" * size), headers=auth
            ) as response:
                assert response.status == 413
                assert response.content_type == "application/problem+json"
                assert limit in (await response.json())["detail"]
    assert "ai-1" in pids(stack["config"])

    def worker_span_exported() -> list[ReceivedSpan] | None:
        spans = otlp.trace(trace_id)
        return spans if any(span.service == "ai" for span in spans) else None

    # core's span, its RPC publish, the worker's consume: one trace
    spans = await eventually(worker_span_exported, within=20)
    server = only(spans, "core's server span", kind="server", service="core")
    assert server.name == "POST /api/ai/text/analyze"
    call = only(spans, "core's RPC publish", kind="producer", service="core")
    assert "ai.text.analyze" in call.name and call.parent_id == server.span_id
    worker = only(spans, "the worker's consume", kind="consumer", service="ai")
    assert worker.parent_id == call.span_id


async def test_a_second_ai_worker_started_by_hand_shares_the_queues(stack):
    config = stack["config"]
    checkout = config.state_dir.parent
    worker = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "ai-worker",
        cwd=checkout,
        env=stack["env"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    port, metrics_port = config.ai_base_port + 1, config.ai_metrics_base_port + 1
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, within=60, every=0.25)
            auth = await admin_headers(stack, http)

            async def analyze(number: int) -> int:
                body = {"text": f"Review number {number}: a fine teapot."}
                async with http.post(
                    f"{stack['base']}/api/ai/text/analyze", json=body, headers=auth
                ) as response:
                    return response.status

            assert await asyncio.gather(*(analyze(n) for n in range(12))) == [200] * 12

            async def served(metrics: int) -> float:
                async with http.get(f"http://127.0.0.1:{metrics}/metrics") as response:
                    text = await response.text()
                return sum(
                    float(value)
                    for labels, value in re.findall(
                        r"relais_rpc_requests_total\{([^}]*)\} (\S+)", text
                    )
                    if 'method="ai.text.analyze"' in labels and 'outcome="ok"' in labels
                )

            # both took a share: the stack's worker and the one started by hand
            assert await served(metrics_port) > 0
            assert await served(config.ai_metrics_base_port) > 0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)


def locust(
    stack: dict[str, Any], *options: str, env: dict[str, str], workers: int = 0
) -> subprocess.CompletedProcess[str]:
    """A headless Locust run of loadtests/ against the stack (a master and `workers` workers,
    or one local process), as processes: Locust monkey-patches the standard library."""
    binary = str(ROOT / ".venv" / "bin" / "locust")
    common = ["-f", str(ROOT / "loadtests" / "locustfile.py"), "--host", stack["base"]]
    helpers = [
        subprocess.Popen(
            [binary, *common, "--worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    distributed = ["--master", "--expect-workers", str(workers)] if workers else []
    try:
        return subprocess.run(
            [binary, *common, "--headless", "--only-summary", *distributed, *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        for helper in helpers:
            try:
                helper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                helper.kill()


def broken_gates(log: str) -> list[str]:
    """The gates a Locust run's log says it broke (gates.py's error, a gate a line)."""
    _, found, after = log.partition("SLO gates failed:\n")
    lines = after.splitlines() if found else []
    return [line.strip() for line in itertools.takewhile(lambda line: line.startswith("  "), lines)]


async def test_a_distributed_smoke_load_passes_its_slo_gates_and_a_broken_gate_fails_the_run(
    stack, tmp_path
):
    # the load test makes its own catalog through the API, as an admin
    async with aiohttp.ClientSession() as http:
        email = f"load-admin-{uuid.uuid4().hex[:8]}@example.com"
        await admin_headers(stack, http, email)
    env = {
        **os.environ,
        "LOADTEST_ADMIN_EMAIL": email,
        "LOADTEST_ADMIN_PASSWORD": "e2e password",
    }
    report = tmp_path / "smoke"
    shape = ["--load-shape", "step", "--step-users", "4", "--step-seconds", "10"]
    shape += ["--max-users", "12", "--shape-seconds", "30"]
    run = locust(stack, *shape, "--csv", str(report), env=env, workers=2)
    broken = broken_gates(run.stderr)
    if broken and not any(": errors " in gate for gate in broken):
        # Only latency broke: on this shared 2-core machine a slow spell of the host (CI once
        # ran make test at 2.4 times its usual time) stretches 30 s of 12 users' tails. One
        # more run decides; an error ratio never gets a second run.
        print(f"a second run: the first broke {broken} (load {os.getloadavg()})")
        run = locust(stack, *shape, "--csv", str(report), env=env, workers=2)
    assert run.returncode == 0, broken_gates(run.stderr) or run.stderr[-3000:]
    assert "SLO gates passed" in run.stderr
    rows = {
        line.split(",")[1]: line for line in (tmp_path / "smoke_stats.csv").read_text().splitlines()
    }
    # every kind of journey ran, the push journey among them
    for name in ("browse: product", "checkout: pay", "ai: search", "push: payment.succeeded"):
        assert name in rows, sorted(rows)
    # a gate the run cannot meet fails it, and names the journey and the limit; a percentile is
    # judged only once it is more than the slowest request (p99: from 100 requests on)
    strict = tmp_path / "strict.yml"
    strict.write_text(
        "default: {p95: 100000, p99: 100000, errors: 1}\n"
        'gates:\n  "browse: product": {p95: 0, p99: 0, errors: 1}\n'
    )
    # 8 browsers for 16 s view about 50 products (6 for 12 s viewed 20, the least judged)
    browsers = ["--load-shape", "soak", "--step-users", "8", "--max-users", "8"]
    run = locust(
        stack,
        *browsers,
        *["--shape-seconds", "16", "--csv", str(tmp_path / "strict"), "Browser"],
        env={**env, "LOADTEST_GATES": str(strict)},
    )
    assert run.returncode == 1, run.stderr[-3000:]
    products = next(
        int(line.split(",")[2])
        for line in (tmp_path / "strict_stats.csv").read_text().splitlines()
        if line.split(",")[1] == "browse: product"
    )
    assert 20 <= products < 100, products
    # that gate alone, its p95 (p99 is not judged below 100 requests)
    broken = broken_gates(run.stderr)
    assert len(broken) == 1 and broken[0].startswith("browse: product: p95 "), run.stderr[-3000:]


async def test_make_capacity_steps_until_a_gate_breaks_and_reports_what_it_measured(
    stack, tmp_path
):
    async with aiohttp.ClientSession() as http:
        email = f"capacity-admin-{uuid.uuid4().hex[:8]}@example.com"
        await admin_headers(stack, http, email)
    # gates no request meets: the run must stop after the first step, not at the top one
    strict = tmp_path / "strict.yml"
    strict.write_text("default: {p95: 100000, p99: 100000, errors: -1}\n")
    out = tmp_path / "capacity"
    run = stack["make"](
        "capacity",
        check=False,
        extra={
            "CAPACITY_AS_CONFIGURED": "1",  # the limits as shipped: three users stay under them
            "CAPACITY_OUT": str(out),
            "STEP_USERS": "3",
            "STEP_SECONDS": "12",
            "SETTLE_SECONDS": "4",
            "MAX_USERS": "9",
            "MIN_JUDGED": "1",
            "LOADTEST_GATES": str(strict),
            "LOADTEST_ADMIN_EMAIL": email,
            "LOADTEST_ADMIN_PASSWORD": "e2e password",
        },
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [step["users"] for step in steps] == [3]  # stopped at the first broken gate
    (step,) = steps
    assert step["end"] - step["start"] == pytest.approx(8, abs=2.5)
    judged = {name for name in step["names"] if name != "Aggregated"}
    assert judged and {gate.split(": errors")[0] for gate in step["broken"]} == judged
    # Prometheus' view of the window: the CPU of the stack's processes, its loops' lag
    resources = step["resources"]
    assert {"core", "postgres"} <= set(resources["cpu"])
    assert resources["CPU of a service process"] and resources["Event-loop lag p99"]
    report = (out / "README.md").read_text()
    assert "The run stopped at 3 users" in report and ": errors " in report
    assert "## The highest throughput within the SLOs, per journey" in report
    assert "## What saturated first" in report
    for plot in ("throughput", "latency", "errors", "cpu", "saturation"):
        assert f"]({plot}.png)" in report
        assert (out / f"{plot}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def test_make_down_stops_everything(stack):
    config = stack["config"]
    running = list(pids(config).values())
    # nginx, two core instances, the payments worker, the AI worker, two gateway instances,
    # Prometheus, Alertmanager and its receiver, four exporters and the backups' exporter
    assert len(running) == 15
    stack["make"]("down")
    for pid in running:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(f"{stack['base']}/healthz"):
            pass
    conn = await asyncpg.connect(config.postgres_admin_url)
    await conn.close()
