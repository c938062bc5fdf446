"""OpenTelemetry traces: the SDK exporting OTLP/HTTP in batches, and the instrumentations.

`start_tracing(settings)` runs once per process, before the app is built (the aiohttp server
instrumentation puts its middleware into every `web.Application` made afterwards). Spans come
from the instrumentation packages: aiohttp server and client, asyncpg, Redis, and aio-pika
publish and consume (context travels in AMQP headers). The outbox stores the context of the
transaction that wrote a row (`context_headers`) and the relay publishes under it
(`attached`), so a message published later still belongs to the request that caused it.

Configuration is OpenTelemetry's own environment: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER_ARG` (the ratio of a parent-based
sampler), and the SDK's `OTEL_BSP_*` batch settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from chassis.settings import ServiceSettings

__all__ = [
    "TraceIds",
    "attached",
    "context_headers",
    "current_ids",
    "start_tracing",
    "tag_request",
    "untraced",
]

log = logging.getLogger("relais.tracing")

# A span's trace id and span id in hex, and whether it is sampled (exported).
TraceIds = tuple[str, str, bool]
REQUEST_ID_ATTRIBUTE = "relais.request_id"
# Scrapes and probes would be most of the traces and say nothing.
UNTRACED_PATHS = "/metrics,/health/live,/health/ready"


def start_tracing(settings: ServiceSettings) -> TracerProvider | None:
    """Install the tracer provider and instrument the libraries; None when tracing is off."""
    if settings.otel_sdk_disabled:
        return None
    resource = Resource.create(
        {
            "service.name": settings.otel_service_name or settings.service_name,
            "service.instance.id": f"{os.uname().nodename}:{os.getpid()}",
            "deployment.environment.name": settings.relais_env,
        }
    )
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_arg)),
        resource=resource,
    )
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", UNTRACED_PATHS)
    with warnings.catch_warnings():
        # The instrumentor inserts its middleware by subclassing web.Application, which aiohttp
        # discourages with a DeprecationWarning; the subclass changes nothing else.
        warnings.simplefilter("ignore", DeprecationWarning)
        AioHttpServerInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    AioPikaInstrumentor().instrument(tracer_provider=provider)
    log.info(
        "tracing",
        extra={"otlp_endpoint": endpoint, "sampler_ratio": settings.otel_traces_sampler_arg},
    )
    return provider


def stop_tracing(provider: TracerProvider | None) -> None:
    """Export the spans still queued, then stop."""
    if provider is not None:
        provider.shutdown()


def context_headers() -> dict[str, str]:
    """The current trace context as W3C headers (empty outside a span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def attached(headers: Mapping[str, Any]) -> Iterator[None]:
    """Make the trace context carried in `headers` current for the block."""
    token = context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No spans for the block: housekeeping (polls, purges) would bury the requests' traces."""
    with suppress_instrumentation():
        yield


def tag_request(request_id: str) -> TraceIds | None:
    """Put the request id on the server span, so an access-log line leads to its trace; the
    span's ids."""
    span = trace.get_current_span()
    span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
    return _ids(span)


def current_ids() -> TraceIds | None:
    """The current span's trace and span ids in hex, and whether it is sampled (exported);
    None outside a span. An unsampled trace id still ties one request's log lines together."""
    return _ids(trace.get_current_span())


def _ids(span: trace.Span) -> TraceIds | None:
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None
    return (
        format(span_context.trace_id, "032x"),
        format(span_context.span_id, "016x"),
        span_context.trace_flags.sampled,
    )
