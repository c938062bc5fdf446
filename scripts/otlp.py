"""A local OTLP/HTTP trace receiver (protobuf): what Jaeger's port 4318 takes, kept in memory.

Tests assert on the spans the services export; the benchmark uses it as the collector.
`python -m scripts.otlp [--port 4318]` prints one line per received span.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

PROTOBUF = "application/x-protobuf"
KINDS = {
    SpanProto.SPAN_KIND_INTERNAL: "internal",
    SpanProto.SPAN_KIND_SERVER: "server",
    SpanProto.SPAN_KIND_CLIENT: "client",
    SpanProto.SPAN_KIND_PRODUCER: "producer",
    SpanProto.SPAN_KIND_CONSUMER: "consumer",
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in hex (`parent_id` empty for a root)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP `ExportTraceServiceRequest`."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS.get(span.kind, "unspecified"),
                        service=str(resource.get("service.name", "")),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


class OtlpReceiver:
    """Serves `POST /v1/traces`; keeps the spans (`keep=False`: counts them only)."""

    def __init__(
        self, *, keep: bool = True, on_span: Callable[[ReceivedSpan], None] | None = None
    ) -> None:
        self.keep = keep
        self.on_span = on_span
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self.bytes = 0
        self.port = 0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def app(self) -> web.Application:
        """The receiver's aiohttp application."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        return app

    async def _export(self, request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            return web.Response(status=415, text="OTLP/HTTP protobuf only")
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.exports += 1
        self.bytes += len(body)
        if self.keep or self.on_span:
            for span in decode_spans(body):
                if self.on_span:
                    self.on_span(span)
                if self.keep:
                    self.spans.append(span)
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type=PROTOBUF)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received so far of one trace."""
        return [span for span in list(self.spans) if span.trace_id == trace_id]

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, ready: Callable[[], None] | None = None
    ) -> None:
        """Serve until stopped; `self.port` is set, and `ready` called, once listening."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._stop, self._loop = asyncio.Event(), asyncio.get_running_loop()
        self.port = runner.addresses[0][1]
        if ready is not None:
            ready()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start_thread(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve in a thread of its own (so it outlives any one event loop); the port."""
        started = threading.Event()

        def run() -> None:
            asyncio.run(self.serve(host, port, ready=started.set))

        self._thread = threading.Thread(target=run, name="otlp-receiver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the OTLP receiver did not start")
        return self.port

    def stop_thread(self) -> None:
        """Stop a receiver started with `start_thread`."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


def main() -> None:
    """Print every received span, one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()

    def show(span: ReceivedSpan) -> None:
        print(span.trace_id, span.parent_id or "-" * 16, span.span_id, span.service, span.name)
        sys.stdout.flush()

    asyncio.run(OtlpReceiver(keep=False, on_span=show).serve(args.host, args.port))


if __name__ == "__main__":
    main()
