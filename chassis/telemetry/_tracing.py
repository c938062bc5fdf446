"""OpenTelemetry traces: the SDK exporting OTLP/HTTP in batches, and the instrumentations.

`start_tracing(settings)` runs once per process, before the app is built. Client spans come
from the instrumentation packages: aiohttp client, asyncpg, Redis, and aio-pika publish and
consume (context travels in AMQP headers). The outbox stores the context of the transaction
that wrote a row (`context_headers`) and the relay publishes under it (`attached`), so a
message published later still belongs to the request that caused it.

Server spans are opened by the chassis' edge middleware (`start_server_span`), not by the
aiohttp server instrumentation: that one builds its attributes, span name and metric
attributes on every request, sampled or not (its cost is in the README's Observability
section). Here the edge decides first (`ServerTracer`: the parent's flag, or the ratio on a trace
id it draws itself), and an unsampled request gets no SDK span at all, only a non-recording
span carrying its W3C trace id (for the logs and what it calls); a sampled one gets an
`EdgeSpan`, which records the stable HTTP semantic conventions without the SDK span's locks,
limits and validation, and ends into the SDK's span processor like the SDK's own span.
Spans leave through the SDK's OTLP/HTTP exporter with a faster encoder (`chassis.otlp_encoding`).

Configuration is OpenTelemetry's own environment: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER_ARG` (the ratio of a parent-based
sampler), and the SDK's `OTEL_BSP_*` batch settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes import http_attributes, url_attributes
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import Attributes, AttributeValue

from chassis.settings import ServiceSettings
from chassis.telemetry._otlp_encoding import FastOTLPSpanExporter

__all__ = [
    "EdgeSpan",
    "ServerTracer",
    "TraceIds",
    "Tracing",
    "attached",
    "context_headers",
    "current_ids",
    "end_server_span",
    "is_synthetic",
    "server_tracer",
    "span_ids",
    "start_server_span",
    "start_tracing",
    "stop_tracing",
    "untraced",
]

log = logging.getLogger("relais.tracing")

# A span's trace id and span id in hex, and whether it is sampled (exported).
TraceIds = tuple[str, str, bool]
# An open server span and the token that restores the context it replaced.
ServerSpan = tuple[trace.Span, Token[Context]]
REQUEST_ID_ATTRIBUTE = "relais.request_id"
# Seconds a stopping process gives the export of its last spans.
FLUSH_GRACE = 3.0
TRACEPARENT = "traceparent"
BAGGAGE = "baggage"
# Load tests and probes mark their requests so dashboards can tell them from users': W3C
# baggage `synthetic=true`, or this header (1 or true) from a client that sends no baggage.
SYNTHETIC_HEADER = "X-Relais-Synthetic"
SYNTHETIC_BAGGAGE_KEY = "synthetic"
SYNTHETIC_ATTRIBUTE = "relais.synthetic"
_TRUE = frozenset({"1", "true"})
_BAGGAGE = W3CBaggagePropagator()
# Probes would be most of the traces and say nothing.
UNTRACED_PATHS = frozenset({"/health/live", "/health/ready"})


class EdgeSpan(trace.Span):
    """A sampled server span without the SDK's machinery: no lock, no attribute limits or
    validation, no sampler call, no self-metrics. The edge middleware sets a handful of
    attributes of its own making; at its end it hands the SDK's span processor the same
    `ReadableSpan` the SDK's span would (name, kind, ids, parent, resource, scope, times,
    attributes, events, status), so the batch export is unchanged. In context it is the
    parent of what the request calls: the SDK's spans of asyncpg, Redis and aio-pika follow its
    sampled flag as they would the SDK's own span."""

    def __init__(
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        parts: EdgeTracerParts,
    ) -> None:
        self._name = name
        self._context = span_context
        self._parent = parent
        self._parts = parts
        self._attributes: dict[str, Any] = {}
        self._events: list[Event] = []
        self._status = Status(StatusCode.UNSET)
        self._start = time.time_ns()
        self._end: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end is None and value is not None:
            self._attributes[key] = tuple(value) if isinstance(value, list) else value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end is None:
            self._events.append(Event(name, attributes, timestamp))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return  # as the SDK: OK is final
        if isinstance(status, StatusCode):
            status = Status(status, description if status is StatusCode.ERROR else None)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded: dict[str, AttributeValue] = {
            "exception.type": kind.__qualname__
            if module in ("", "builtins")
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        recorded.update(attributes or {})
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time if end_time is not None else time.time_ns()
        parts = self._parts
        parts.processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=parts.resource,
                attributes=self._attributes,
                events=self._events,
                kind=SpanKind.SERVER,
                status=self._status,
                start_time=self._start,
                end_time=self._end,
                instrumentation_scope=parts.scope,
            )
        )


@dataclass(frozen=True)
class EdgeTracerParts:
    """What an `EdgeSpan` hands its end to: the SDK tracer's span processor, resource and
    instrumentation scope."""

    processor: SpanProcessor
    resource: Resource
    scope: InstrumentationScope

    @classmethod
    def of(cls, tracer: SdkTracer) -> EdgeTracerParts:
        info = tracer.instrumentation_info
        return cls(
            tracer.span_processor,
            tracer.resource,
            InstrumentationScope(info.name, info.version, info.schema_url),
        )


_SAMPLED_ROOT = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_RANDOM_ROOT = TraceFlags(TraceFlags.RANDOM_TRACE_ID)  # what the SDK flags a root it drew
_ID_BITS = (1 << 64) - 1  # TraceIdRatioBased decides on the low 64 bits of a trace id


class ServerTracer:
    """Opens server spans, deciding at the edge as `ParentBased(TraceIdRatioBased(ratio))`
    would: a sampled request gets an `EdgeSpan`, an unsampled one only a non-recording span
    with its ids (no SDK work: the decision is most requests' only cost)."""

    def __init__(self, tracer: SdkTracer, ratio: float) -> None:
        self.parts = EdgeTracerParts.of(tracer)
        self.ratio = ratio
        # A root trace id below it (in its low 64 bits) is sampled, as the SDK's sampler has it.
        self.bound = TraceIdRatioBased.get_bound_for_rate(ratio)

    def start(self, name: str, parent: Context | None) -> trace.Span:
        """A server span named `name`, child of the remote span in `parent` if any."""
        caller = trace.get_current_span(parent).get_span_context() if parent else None
        if caller is not None and caller.is_valid:
            flags = TraceFlags(
                caller.trace_flags & (TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
            )
            ids = SpanContext(caller.trace_id, _span_id(), False, flags, caller.trace_state)
            if caller.trace_flags.sampled:
                return EdgeSpan(name, ids, caller, self.parts)
            return NonRecordingSpan(ids)
        trace_id = random.getrandbits(128) or 1
        if trace_id & _ID_BITS < self.bound:
            return EdgeSpan(
                name, SpanContext(trace_id, _span_id(), False, _SAMPLED_ROOT), None, self.parts
            )
        return NonRecordingSpan(SpanContext(trace_id, _span_id(), False, _RANDOM_ROOT))


def _span_id() -> int:
    return random.getrandbits(64) or 1


# The tracer of server spans; None when the process does not trace.
TRACER = web.AppKey["ServerTracer | None"]("tracer")


@dataclass(frozen=True)
class Tracing:
    """The process's tracer provider and the exporter behind its batch processor."""

    provider: TracerProvider
    exporter: OTLPSpanExporter


def start_tracing(settings: ServiceSettings) -> Tracing | None:
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
        shutdown_on_exit=False,  # `stop_tracing` does it, within a bounded time
    )
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
    # The SDK's own encoder when asked (the benchmark compares the two side by side).
    exporter_type = (
        OTLPSpanExporter
        if os.environ.get("RELAIS_OTLP_ENCODER") == "sdk"
        else (FastOTLPSpanExporter)
    )
    exporter = exporter_type(f"{endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    AioPikaInstrumentor().instrument(tracer_provider=provider)
    log.info(
        "tracing",
        extra={"otlp_endpoint": endpoint, "sampler_ratio": settings.otel_traces_sampler_arg},
    )
    return Tracing(provider, exporter)


def server_tracer(ratio: float) -> ServerTracer | None:
    """The tracer of server spans sampling `ratio` of the root requests (the provider's
    sampler's ratio), or None when this process does not trace."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    tracer = provider.get_tracer("relais.http")
    return ServerTracer(tracer, ratio) if isinstance(tracer, SdkTracer) else None


def is_synthetic(headers: Mapping[str, str]) -> bool:
    """Whether a request says it is synthetic traffic (a load test, a probe): `baggage` with
    `synthetic=true`, or `X-Relais-Synthetic: 1`."""
    if headers.get(SYNTHETIC_HEADER, "").lower() in _TRUE:
        return True
    if BAGGAGE not in headers:
        return False
    members = _BAGGAGE.extract({BAGGAGE: headers[BAGGAGE]})
    found = baggage.get_baggage(SYNTHETIC_BAGGAGE_KEY, members)
    # OpenTelemetry leaves a member's properties (`true;source=locust`) in its value
    return isinstance(found, str) and found.split(";", 1)[0].strip().lower() in _TRUE


def start_server_span(
    tracer: ServerTracer,
    request: web.Request,
    route: str,
    request_id: str,
    *,
    synthetic: bool = False,
) -> ServerSpan | None:
    """Open the request's server span, child of the caller's `traceparent` and carrying its
    `baggage` on to what it calls, and make it current; None for probes. A synthetic request's
    span says so (`relais.synthetic`), for Jaeger's search. Close it with `end_server_span`."""
    if request.path in UNTRACED_PATHS:
        return None
    headers = request.headers
    parent = propagate.extract(headers) if TRACEPARENT in headers or BAGGAGE in headers else None
    span = tracer.start(f"{request.method} {route}", parent)
    if span.is_recording():
        span.set_attributes(
            {
                http_attributes.HTTP_REQUEST_METHOD: request.method,
                http_attributes.HTTP_ROUTE: route,
                url_attributes.URL_PATH: request.path,
                url_attributes.URL_SCHEME: request.scheme,
                REQUEST_ID_ATTRIBUTE: request_id,
            }
        )
        if synthetic:
            span.set_attribute(SYNTHETIC_ATTRIBUTE, True)
    return span, context.attach(trace.set_span_in_context(span, parent))


def end_server_span(started: ServerSpan | None, status: int) -> None:
    """Record the response status on the server span, end it and restore the context."""
    if started is None:
        return
    span, token = started
    if span.is_recording():
        span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()
    context.detach(token)


def stop_tracing(tracing: Tracing | None, grace: float = FLUSH_GRACE) -> None:
    """Export the spans still queued, for `grace` seconds at most, then stop.

    The SDK's shutdown waits up to 30 s for its export thread, which retries while the
    collector is down: past the grace, shutting the exporter down ends its retries."""
    if tracing is None:
        return
    flushing = threading.Thread(target=tracing.provider.shutdown, name="otel-flush", daemon=True)
    flushing.start()
    flushing.join(grace)
    if flushing.is_alive():
        log.warning("spans not exported within %.0fs of shutdown; dropping them", grace)
        tracing.exporter.shutdown()  # type: ignore[no-untyped-call]
        flushing.join(grace)


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


def current_ids() -> TraceIds | None:
    """The current span's trace and span ids in hex, and whether it is sampled (exported);
    None outside a span. An unsampled trace id still ties one request's log lines together."""
    return span_ids(trace.get_current_span())


def span_ids(span: trace.Span) -> TraceIds | None:
    """`span`'s trace and span ids in hex, and whether it is sampled; None if invalid."""
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None
    return (
        span_context.trace_id.to_bytes(16, "big").hex(),  # a third of format(id, "032x")'s time
        span_context.span_id.to_bytes(8, "big").hex(),
        span_context.trace_flags.sampled,
    )
