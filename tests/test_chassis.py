"""The chassis seen from outside: problem+json on every error path, request ids, metrics, health."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from redis.asyncio import Redis

from chassis.data import DB_POOL, bind_pool_gauges, metered_pool
from chassis.http import create_service_app
from chassis.settings import DEV_KEY_DIR, ServiceSettings
from chassis.tasks import background
from chassis.telemetry import (
    ACCESS_LOG,
    METRICS,
    TRACER,
    AccessLog,
    FastOTLPSpanExporter,
    Metrics,
    ServerTracer,
    Tracing,
    encode_spans,
    start_tracing,
    stop_tracing,
)
from devstack import StackSettings, ensure_keys
from scripts.otlp import OtlpReceiver
from services.core.app import create_app
from services.core.settings import CoreSettings
from services.payments.settings import PaymentsSettings
from tests.factories import register
from tests.faults import TcpProxy

PROBLEM = "application/problem+json"


async def assert_problem(response, status: int) -> dict:
    assert response.status == status
    assert response.content_type == PROBLEM
    body = await response.json()
    assert body["status"] == status
    assert body["type"].startswith("http://127.0.0.1:8080/api/problems/")  # PUBLIC_URL's
    assert body["title"] and body["detail"]
    assert body["title"][1:] == body["title"][1:].lower() or body["title"].startswith("The ")
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


async def test_unknown_route_is_404_problem(client):
    body = await assert_problem(await client.get("/api/nowhere"), 404)
    assert body["instance"] == "/api/nowhere"


async def test_wrong_method_is_405_problem_with_allow(client):
    response = await client.put("/api/auth/login", json={})
    await assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_body_over_one_megabyte_is_413_problem(client, db):
    before = await db.fetchval("SELECT count(*) FROM users")
    big = json.dumps({"email": "big@example.com", "password": "x" * (1024 * 1024), "name": "B"})
    response = await client.post(
        "/api/auth/register",
        data=io.BytesIO(big.encode()),
        headers={"Content-Type": "application/json"},
    )
    await assert_problem(response, 413)
    assert await db.fetchval("SELECT count(*) FROM users") == before


async def test_unexpected_error_is_500_problem_without_trace(aiohttp_client, settings, caplog):
    app = create_service_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/boom", headers={"X-Request-ID": "boom-00000001"})
    text = await response.text()
    await assert_problem(response, 500)
    assert "secret internals" not in text and "Traceback" not in text
    assert "secret internals" in caplog.text
    [record] = [r for r in caplog.records if r.name == "relais.errors"]
    assert (record.request_id, record.path) == ("boom-00000001", "/boom")


async def test_request_id_echoed_when_well_formed(client):
    ok = await client.get("/health/live", headers={"X-Request-ID": "req-1234abcd"})
    assert ok.headers["X-Request-ID"] == "req-1234abcd"
    for bad in ("short", "has spaces in it", "x" * 200, "<script>alert(1)</script>"):
        response = await client.get("/health/live", headers={"X-Request-ID": bad})
        assert response.headers["X-Request-ID"] != bad
        assert len(response.headers["X-Request-ID"]) == 32
    errored = await client.get("/nope", headers={"X-Request-ID": "req-err-00001"})
    assert (await errored.json())["request_id"] == "req-err-00001"


async def test_access_log_line_per_request(aiohttp_client, settings):
    app = create_app(settings)
    lines = io.StringIO()
    app[ACCESS_LOG] = AccessLog("core", lines)
    client = await aiohttp_client(app)
    await client.get(
        "/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11",
        headers={"X-Request-ID": "log-test-0001"},
    )
    await client.get("/health/live")
    app[ACCESS_LOG].flush()
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    mine = [e for e in entries if e["request_id"] == "log-test-0001"]
    assert len(mine) == 1
    entry = mine[0]
    assert (entry["method"], entry["route"], entry["status"]) == ("GET", "/api/products/{id}", 404)
    assert entry["duration_ms"] >= 0 and entry["service"] == "core" and entry["ts"].endswith("Z")
    assert [e["route"] for e in entries] == ["/api/products/{id}", "/health/live"]


async def test_json_formatter_emits_fields():
    from chassis.telemetry import JsonFormatter

    record = logging.LogRecord("relais.access", logging.INFO, __file__, 1, "request", None, None)
    record.route = "/api/x/{id}"
    line = json.loads(JsonFormatter("core").format(record))
    assert line["service"] == "core" and line["route"] == "/api/x/{id}" and line["level"] == "info"


async def test_log_lines_inside_a_span_carry_its_ids():
    from chassis.telemetry import JsonFormatter

    tracer = TracerProvider().get_tracer("test")
    record = logging.LogRecord("relais.test", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in json.loads(JsonFormatter("core").format(record))
    with tracer.start_as_current_span("work") as span:
        line = json.loads(JsonFormatter("core").format(record))
    ids = span.get_span_context()
    assert (line["trace_id"], line["span_id"]) == (f"{ids.trace_id:032x}", f"{ids.span_id:016x}")


def test_latency_exemplars_name_sampled_traces_only():
    metrics = Metrics("core")
    sampled, unsampled = ("ab" * 16, "cd" * 8, True), ("ef" * 16, "01" * 8, False)
    metrics.observe("GET", "/api/a", 200, 0.003, sampled)
    metrics.observe("GET", "/api/b", 200, 0.003, unsampled)
    metrics.observe("GET", "/api/c", 200, 0.003, None)
    body, content_type = metrics.expose("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    exemplars = [line for line in body.decode().splitlines() if " # {" in line]
    assert len(exemplars) == 1
    assert 'route="/api/a"' in exemplars[0] and f'trace_id="{"ab" * 16}"' in exemplars[0]
    # the Prometheus text format has no exemplars: the classic scrape is unchanged
    assert " # {" not in metrics.expose("text/plain")[0].decode()


def test_a_stopping_process_waits_for_an_unreachable_collector_only_briefly(unused_tcp_port):
    # Nothing listens on the port: the exporter would retry for 10 s per batch, and the SDK's
    # shutdown would wait 30 s for it.
    exporter = FastOTLPSpanExporter(f"http://127.0.0.1:{unused_tcp_port}/v1/traces")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    for _ in range(1000):
        provider.get_tracer("test").start_span("work").end()
    started = time.monotonic()
    stop_tracing(Tracing(provider, exporter), grace=0.5)
    assert time.monotonic() - started < 3


def test_tracing_off_installs_nothing():
    assert start_tracing(ServiceSettings(otel_sdk_disabled=True)) is None
    assert not trace.get_current_span().get_span_context().is_valid


async def test_server_spans_name_the_request_and_the_response_names_its_trace(
    aiohttp_client, settings
):
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = create_app(settings)
    app[TRACER] = ServerTracer(provider.get_tracer("test"), 1.0)  # what a traced process has
    lines = io.StringIO()
    app[ACCESS_LOG] = AccessLog("core", lines)
    client = await aiohttp_client(app)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = await client.get(
        "/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11",
        headers={
            "X-Request-ID": "trace-test-0001",
            "traceparent": f"00-{caller_trace}-{caller_span}-01",
        },
    )
    await client.get("/health/ready")  # probes make no spans
    app[ACCESS_LOG].flush()
    (span,) = exported.get_finished_spans()
    ids = span.get_span_context()
    trace_id, span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    assert trace_id == caller_trace and span.parent is not None
    assert f"{span.parent.span_id:016x}" == caller_span
    assert span.name == "GET /api/products/{id}" and span.kind == SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/api/products/{id}",
        "url.path": "/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11",
        "url.scheme": "http",
        "relais.request_id": "trace-test-0001",
        "http.response.status_code": 404,
    }
    assert response.headers["traceresponse"] == f"00-{trace_id}-{span_id}-01"
    entry = json.loads(lines.getvalue().splitlines()[0])
    assert (entry["trace_id"], entry["span_id"]) == (trace_id, span_id)


def test_the_edge_samples_the_ratio_and_exports_every_request_it_chose():
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = ServerTracer(provider.get_tracer("test"), 0.1)
    spans = [tracer.start("GET /api/things", None) for _ in range(4000)]
    chosen = [span for span in spans if span.is_recording()]
    for span in spans:
        span.end()
    # 400 expected; a second draw by the SDK would keep about 40 (0.1 of 0.1).
    assert 300 < len(chosen) < 500
    assert len(exported.get_finished_spans()) == len(chosen)
    trace_ids = {span.get_span_context().trace_id for span in spans}
    assert len(trace_ids) == 4000  # every request keeps a trace id of its own, for its logs
    for span in spans:
        span_context, recorded = span.get_span_context(), span in chosen
        assert span_context.is_valid and span_context.trace_flags.sampled == recorded
        assert (span_context.trace_id & (2**64 - 1) < tracer.bound) == recorded


def test_the_edge_follows_the_caller_s_sampling_decision():
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = ServerTracer(provider.get_tracer("test"), 0.0)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    for flags in ("01", "00"):
        parent = propagate.extract(
            {"traceparent": f"00-{caller_trace}-{caller_span}-{flags}", "tracestate": "k=v"}
        )
        span = tracer.start("GET /api/things", parent)
        recorded = span.is_recording()
        span.end()
        span_context = span.get_span_context()
        assert f"{span_context.trace_id:032x}" == caller_trace
        assert f"{span_context.span_id:016x}" != caller_span
        assert recorded == span_context.trace_flags.sampled == (flags == "01")
        assert span_context.trace_state.get("k") == "v"
    (recorded,) = exported.get_finished_spans()
    assert recorded.parent is not None and f"{recorded.parent.span_id:016x}" == caller_span
    assert not tracer.start("GET /api/things", None).is_recording()  # ratio 0: roots never


def test_an_edge_span_exports_what_the_sdk_s_span_would_and_parents_the_sdk_s_spans():
    exported = InMemorySpanExporter()
    resource = Resource.create({"k": "v"})
    # Ratio 0 for the SDK: a child is sampled only because its edge parent is.
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)), resource=resource)
    reference = TracerProvider(resource=resource)  # the SDK's span to compare with
    for each in (provider, reference):
        each.add_span_processor(SimpleSpanProcessor(exported))
    sdk_tracer = provider.get_tracer("relais.http")
    edge = ServerTracer(sdk_tracer, 1.0).start("GET /api/things", None)
    sdk = reference.get_tracer("relais.http").start_span("GET /api/things", kind=SpanKind.SERVER)
    for span in (edge, sdk):
        assert span.is_recording()
        span.set_attributes({"http.route": "/api/things", "url.scheme": "http"})
        span.set_attribute("http.response.status_code", 500)
        span.set_attribute("relais.tags", ["a", "b"])
        span.record_exception(ValueError("boom"), {"k": 1}, timestamp=7)
        span.add_event("retry", {"attempt": 2}, timestamp=8)
        span.set_status(StatusCode.ERROR, "failed")
        span.set_status(Status(StatusCode.UNSET))  # ignored, as ever
        span.update_name("GET /api/things/{id}")
    with trace.use_span(edge, end_on_exit=False):
        child = sdk_tracer.start_span("SELECT")
        child.end()
    edge.end()
    edge.set_attribute("late", True)  # an ended span takes nothing
    sdk.end()
    child_span, edge_span, sdk_span = exported.get_finished_spans()
    assert not edge.is_recording() and "late" not in (edge_span.attributes or {})
    assert child_span.parent is not None and child_span.context.trace_flags.sampled
    assert child_span.parent.span_id == edge_span.context.span_id
    assert child_span.context.trace_id == edge_span.context.trace_id
    assert edge_span.context.trace_flags == sdk_span.context.trace_flags

    def comparable(span: ReadableSpan) -> dict[str, Any]:
        shown = json.loads(span.to_json())
        for field in ("context", "start_time", "end_time"):
            del shown[field]
        for event in shown["events"]:
            event["attributes"].pop("exception.stacktrace", None)
        return shown

    assert comparable(edge_span) == comparable(sdk_span)
    assert edge_span.instrumentation_scope == sdk_span.instrumentation_scope
    assert encode_spans([edge_span]) == sdk_encode_spans([edge_span]).SerializePartialToString()


async def test_a_synthetic_request_s_span_says_so_for_jaeger_s_search(aiohttp_client, settings):
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = create_app(settings)
    app[TRACER] = ServerTracer(provider.get_tracer("test"), 1.0)
    client = await aiohttp_client(app)
    path = "/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11"
    await client.get(path, headers={"baggage": "synthetic=true"})  # a load test's, no parent
    await client.get(path)
    marked, unmarked = exported.get_finished_spans()
    assert marked.parent is None and (marked.attributes or {}).get("relais.synthetic") is True
    assert "relais.synthetic" not in (unmarked.attributes or {})


async def test_metrics_use_route_templates_on_their_own_port(make_client, unused_tcp_port):
    client = await make_client(metrics_port=unused_tcp_port)
    for _ in range(3):
        await client.get("/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11")
    await client.get("/api/products/e5b4c3a2-0000-4000-8000-000000000000")
    await client.get("/definitely/not/here")
    session = client.session
    async with session.get(f"http://127.0.0.1:{unused_tcp_port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    counted = 'relais_http_requests_total{method="GET",route="/api/products/{id}",service="core",'
    assert counted + 'status="4xx",traffic="real"} 4.0' in text
    assert 'route="unmatched"' in text
    assert "0b7f3a52" not in text
    assert "relais_http_request_duration_seconds_bucket" in text
    assert "relais_http_requests_in_flight" in text
    assert 'relais_db_pool_connections{service="core"}' in text
    assert 'relais_db_pool_connections_in_use{service="core"}' in text
    assert "process_cpu_seconds_total" in text  # per process, as the capacity report reads it
    assert (await client.get("/metrics")).status == 404


async def test_an_exhausted_pool_shows_its_waiting_callers_and_their_wait(settings):
    app = web.Application()
    metrics = app[METRICS] = Metrics("core")
    pool = app[DB_POOL] = await metered_pool(settings.database_url, min_size=1, max_size=1)
    bind_pool_gauges(app)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"service": "core", **labels})

    try:
        async with pool.acquire():
            waiter = asyncio.create_task(pool.fetchval("SELECT 1"))
            await asyncio.sleep(0.2)
            assert sample("relais_db_pool_waiting") == 1
            assert sample("relais_db_pool_connections_in_use") == 1
        assert await waiter == 1
    finally:
        await pool.close()
    assert sample("relais_db_pool_waiting") == 0
    assert sample("relais_db_pool_acquire_seconds_count") == 2
    # the first took a connection at once, the second waited the first's 0.2 s
    assert sample("relais_db_pool_acquire_seconds_bucket", le="0.1") == 1


@pytest.mark.parametrize(
    ("headers", "traffic"),
    [
        ({}, "real"),
        ({"baggage": "synthetic=true"}, "synthetic"),
        ({"baggage": "tenant=a, synthetic=true;prop=1"}, "synthetic"),
        ({"X-Relais-Synthetic": "1"}, "synthetic"),
        ({"baggage": "synthetic=false"}, "real"),
        ({"baggage": "not baggage at all"}, "real"),
    ],
)
async def test_requests_marked_synthetic_are_counted_apart(make_client, headers, traffic):
    client = await make_client()
    await client.get("/api/products/0b7f3a52-4d0a-4a55-9f6d-6a1e8a6f0e11", headers=headers)
    metrics = client.app[METRICS]
    metrics.drain()  # what a scrape does first
    registry = metrics.registry
    labels = {"service": "core", "method": "GET", "route": "/api/products/{id}"}
    counted = {
        kind: registry.get_sample_value(
            "relais_http_requests_total", {**labels, "status": "4xx", "traffic": kind}
        )
        for kind in ("real", "synthetic")
    }
    other = "synthetic" if traffic == "real" else "real"
    assert counted[traffic] == 1
    assert not counted[other]  # 0, or no series
    latency = {**labels, "traffic": traffic}
    assert registry.get_sample_value("relais_http_request_duration_seconds_count", latency) == 1


async def test_ready_names_the_failed_dependency(make_client):
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    client = await make_client(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    assert (await client.get("/health/live")).status == 200
    ready = await client.get("/health/ready")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {
        "postgres": "ok",
        "redis": "ok",
        "background": "ok",
        "rabbitmq": "ok",
    }
    await proxy.cut()
    body = await assert_problem(await client.get("/health/ready"), 503)
    assert body["checks"]["redis"].startswith("down")
    assert body["checks"]["postgres"] == "ok"
    assert "redis" in body["detail"]
    await proxy.start()
    for _ in range(50):
        if (await client.get("/health/ready")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/health/ready")).status == 200
    await proxy.cut()


async def test_write_rate_limit_is_shared_by_instances(make_client):
    first = await make_client(
        write_rate_limit="4/minute", redis_key_prefix=f"rl-{id(make_client)}:"
    )
    second = await make_client(
        write_rate_limit="4/minute", redis_key_prefix=f"rl-{id(make_client)}:"
    )
    address = {"X-Real-IP": "198.51.100.7"}
    statuses = []
    for i in range(6):
        response = await (first if i % 2 else second).post(
            "/api/auth/login", json={}, headers=address
        )
        statuses.append(response.status)
    assert statuses[:4] == [422] * 4
    assert statuses[4:] == [429, 429]
    refused = await first.post("/api/auth/login", json={}, headers=address)
    assert int(refused.headers["Retry-After"]) >= 1
    # another client address has its own budget; reads are never limited here
    assert (
        await first.post("/api/auth/login", json={}, headers={"X-Real-IP": "198.51.100.8"})
    ).status == 422
    assert (await first.get("/health/live", headers=address)).status == 200
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    async for key in redis.scan_iter(match=f"rl-{id(make_client)}:*"):
        await redis.delete(key)
    await redis.aclose()


async def test_production_refuses_development_secrets(monkeypatch):
    monkeypatch.setenv("RELAIS_ENV", "production")
    with pytest.raises(ValidationError, match="development password"):
        CoreSettings()
    with pytest.raises(ValidationError, match="generated development key"):
        ServiceSettings(database_url="postgresql://relais:s3cret@db/relais")
    with pytest.raises(ValidationError, match="guest account"):
        ServiceSettings(
            database_url="postgresql://relais:s3cret@db/relais",
            jwt_public_key_file="/etc/relais/jwt-public.pem",
            jwt_private_key_file="/etc/relais/jwt-private.pem",
        )
    monkeypatch.setenv("AMQP_URL", "amqp://relais:s3cret@mq:5672/relais")
    ok = ServiceSettings(
        database_url="postgresql://relais:s3cret@db/relais",
        jwt_public_key_file="/etc/relais/jwt-public.pem",
        jwt_private_key_file="/etc/relais/jwt-private.pem",
    )
    assert ok.relais_env == "production"
    with pytest.raises(ValidationError, match="PAYMENTS_WEBHOOK_SECRET"):
        PaymentsSettings(
            database_url="postgresql://relais:s3cret@db/relais",
            stripe_secret_key="sk_live_" + "x" * 24,
        )
    with pytest.raises(ValidationError, match="sandbox provider"):
        PaymentsSettings(database_url="postgresql://relais:s3cret@db/relais")
    inline = ServiceSettings(
        database_url="postgresql://relais:s3cret@db/relais",
        jwt_public_key="-----BEGIN PUBLIC KEY-----...",
        jwt_private_key="-----BEGIN PRIVATE KEY-----...",
    )
    assert inline.jwt_public_pem().startswith("-----BEGIN PUBLIC KEY")


async def test_settings_come_from_environment(monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "9999")
    monkeypatch.setenv("LOGIN_FAILURE_LIMIT", "3/minute")
    settings = CoreSettings()
    assert (settings.http_port, settings.login_failure_limit) == (9999, "3/minute")
    monkeypatch.setenv("HTTP_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        CoreSettings()


async def test_password_hashing_does_not_block_the_loop(client):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(register(client) for _ in range(4)))
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        task.cancel()
    # a blocked loop would let the ticker run only between hashes
    assert ticks >= elapsed / 0.005 * 0.3


async def test_statement_timeout_cancels_runaway_queries(make_client):
    client = await make_client(db_statement_timeout_ms=200)
    pool = client.app[DB_POOL]
    with pytest.raises(asyncpg.exceptions.QueryCanceledError):
        await pool.fetchval("SELECT pg_sleep(2)")
    assert await pool.fetchval("SELECT 1") == 1


def made_spans() -> list[ReadableSpan]:
    """Spans of two services and three scopes, with every field the OTLP encoders write."""
    spans: list[ReadableSpan] = []
    for service, limit in (("core", 128), ("payments", 2)):
        provider = TracerProvider(
            resource=Resource.create({"service.name": service}, schema_url="https://x/1.26.0"),
            span_limits=SpanLimits(max_span_attributes=limit),
        )
        finished = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(finished))
        http = provider.get_tracer("relais.http", "1.2", schema_url="https://x/1.27.0")
        messaging = provider.get_tracer("relais.messaging")
        remote = propagate.extract(
            {
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "tracestate": "relais=1,vendor=x7",
            }
        )
        scalars = {
            "http.request.method": "GET",
            "http.route": "/api/products/{id}",
            "relais.request_id": uuid.uuid4().hex,
            "relais.note": "café ☕ " * 40,  # over 127 bytes: a two-byte length
            "relais.empty": "",
            "http.response.status_code": 200,
            "relais.negative": -(2**40),
            "relais.big": 2**63 - 1,
            "relais.ratio": 0.25,
            "relais.cached": True,
            "relais.stale": False,
        }
        with http.start_as_current_span("GET /api/products/{id}", remote, SpanKind.SERVER) as root:
            root.set_attributes(scalars)
            with messaging.start_as_current_span("publish", kind=SpanKind.PRODUCER) as child:
                child.set_attributes(scalars)  # the same attributes again: the reused encodings
                child.set_attribute("relais.cached", 1)  # equal to True, and a dict key alike
            failed = messaging.start_span("consume", kind=SpanKind.CONSUMER)
            failed.set_attribute("relais.cached", 1.0)
            failed.set_status(Status(StatusCode.ERROR, "provider timed out"))
            failed.end()
        unusual = provider.get_tracer("relais.unusual")
        for shape in ("event", "link", "sequence", "bytes", "ok"):
            span = unusual.start_span(shape, attributes={"relais.shape": shape})
            if shape == "event":
                span.add_event("retry", {"attempt": 2})
            elif shape == "link":
                span.add_link(root.get_span_context(), {"relais.why": "caused by"})
            elif shape == "sequence":
                span.set_attribute("relais.delays", [0.5, 5.0])
            elif shape == "bytes":
                span.set_attribute("relais.raw", b"\x00\xff")
            else:
                span.set_status(Status(StatusCode.OK))
            span.end()
        spans += finished.get_finished_spans()
    return spans


def test_the_fast_otlp_encoder_writes_what_the_sdk_encoder_writes():
    spans = made_spans()
    assert any(span.dropped_attributes for span in spans)  # the payments provider's limit
    assert any(span.get_span_context().trace_state for span in spans)
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert ours == sdk_encode_spans(spans)
    assert len(ours.resource_spans) == 2
    assert sum(len(scope.spans) for rs in ours.resource_spans for scope in rs.scope_spans) == 16


async def test_the_fast_otlp_exporter_delivers_spans_to_an_otlp_receiver(unused_tcp_port):
    receiver = OtlpReceiver()
    port = await asyncio.to_thread(receiver.start_thread)
    try:
        spans = made_spans()
        exporter = FastOTLPSpanExporter(f"http://127.0.0.1:{port}/v1/traces")
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert receiver.exports == 1
        assert sorted(span.name for span in receiver.spans) == sorted(s.name for s in spans)
        (server,) = [s for s in receiver.spans if s.kind == "server" and s.service == "core"]
        assert server.parent_id == "00f067aa0ba902b7"
        assert server.attributes["relais.negative"] == -(2**40)
        refused = FastOTLPSpanExporter(f"http://127.0.0.1:{unused_tcp_port}/v1/traces", timeout=1)
        assert refused.export(spans) == SpanExportResult.FAILURE  # nothing listens there
        refused.shutdown()  # type: ignore[no-untyped-call]
    finally:
        await asyncio.to_thread(receiver.stop_thread)


async def test_production_refuses_generated_secrets_wherever_they_live(monkeypatch, tmp_path):
    monkeypatch.setenv("RELAIS_ENV", "production")
    monkeypatch.setenv("AMQP_URL", "amqp://relais:s3cret@mq:5672/relais")
    database = "postgresql://relais:s3cret@db/relais"
    # the default key folder named by its absolute path, as `make up` passes it
    absolute = (Path(DEV_KEY_DIR) / "jwt-private.pem").resolve()
    with pytest.raises(ValidationError, match="generated development key"):
        ServiceSettings(
            database_url=database,
            jwt_private_key_file=absolute,
            jwt_public_key_file=absolute.with_name("jwt-public.pem"),
        )
    # a state folder elsewhere: its secrets sit beside the marker `make up` leaves
    ensure_keys(StackSettings(state_dir=tmp_path))
    keys = tmp_path / "keys"
    with pytest.raises(ValidationError, match="generated development key"):
        ServiceSettings(
            database_url=database,
            jwt_private_key_file=keys / "jwt-private.pem",
            jwt_public_key_file=keys / "jwt-public.pem",
        )
    elsewhere = {
        "database_url": database,
        "jwt_public_key_file": "/etc/relais/jwt-public.pem",
        "jwt_private_key_file": "/etc/relais/jwt-private.pem",
    }
    CoreSettings(**elsewhere)
    # The payments service takes the webhooks: it refuses the generated secret in production.
    stripe = {"database_url": database, "stripe_secret_key": "sk_live_" + "x" * 24}
    with pytest.raises(ValidationError, match="PAYMENTS_WEBHOOK_SECRET"):
        PaymentsSettings(**stripe, payments_webhook_secret_file=keys / "webhook-secret")
    PaymentsSettings(**stripe, payments_webhook_secret="whsec_" + "x" * 32)
    # the value every copy of the code once shared is refused in any environment
    monkeypatch.setenv("RELAIS_ENV", "development")
    with pytest.raises(ValidationError, match="public development value"):
        PaymentsSettings(payments_webhook_secret="whsec_relais_development")


class BrokenStream(io.StringIO):
    """A stream whose writes fail `failures` times (a full disk, a closed pipe), then work."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, text: str) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        return super().write(text)


async def test_the_access_log_survives_a_failed_write_and_stays_bounded():
    metrics = Metrics("probe")
    stream = BrokenStream(failures=1)
    log = AccessLog("core", stream, interval=0.01, dropped=metrics.access_log_dropped)
    flusher = asyncio.create_task(log.run())
    log.write("GET", "/api/products", 200, 0.001, "lost-000001", None)
    await asyncio.sleep(0.1)  # the first flush fails
    log.write("GET", "/api/products", 200, 0.001, "kept-000001", None)
    await asyncio.sleep(0.1)
    assert not flusher.done()  # the flusher lives on
    assert "kept-000001" in stream.getvalue() and "lost-000001" not in stream.getvalue()
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    dropped = {"service": "probe"}
    assert metrics.registry.get_sample_value("relais_access_log_dropped_total", dropped) == 1
    # nothing flushes now: the buffer stops at its bound and counts what it turns away
    for _ in range(AccessLog.MAX_PENDING + 5):
        log.write("GET", "/", 200, 0.0, "x" * 8, None)
    assert metrics.registry.get_sample_value("relais_access_log_dropped_total", dropped) == 6
    log.flush()
    assert stream.getvalue().count("\n") == 1 + AccessLog.MAX_PENDING


async def test_a_background_task_that_dies_is_logged_and_fails_readiness(
    aiohttp_client, settings, caplog
):
    app = create_app(settings)

    async def doomed() -> None:
        await asyncio.sleep(0.05)
        raise OSError("the disk went away")

    async def doomed_task(app: web.Application) -> AsyncIterator[None]:
        async with background(app, doomed(), "doomed-flusher"):
            yield

    app.cleanup_ctx.append(doomed_task)
    client = await aiohttp_client(app)
    assert (await client.get("/health/ready")).status == 200
    await asyncio.sleep(0.2)
    response = await client.get("/health/ready")
    assert response.status == 503
    checks = (await response.json())["checks"]
    assert "doomed-flusher" in checks["background"] and "disk went away" in checks["background"]
    died = [r for r in caplog.records if "doomed-flusher" in r.getMessage()]
    assert died and died[0].levelname == "ERROR" and died[0].exc_info is not None


async def test_a_blocked_event_loop_shows_in_its_lag_metric(client):
    metrics = client.app[METRICS]

    def lag() -> tuple[float, float]:
        labels = {"service": metrics.service}
        total = metrics.registry.get_sample_value("relais_event_loop_lag_seconds_sum", labels)
        count = metrics.registry.get_sample_value("relais_event_loop_lag_seconds_count", labels)
        return total or 0.0, count or 0.0

    await asyncio.sleep(0.6)  # a few probes of an idle loop: late by a millisecond or so
    idle_total, idle_count = lag()
    assert idle_count >= 1 and idle_total / idle_count < 0.05
    time.sleep(0.5)  # noqa: ASYNC251 - the point: hold the loop
    await asyncio.sleep(0.3)
    total, count = lag()
    assert count > idle_count and total - idle_total >= 0.25
