"""Telemetry: logs, metrics and traces of a process.

JSON logs and the access log (`configure_logging`, `AccessLog`), Prometheus metrics with
exemplars on a port of their own (`Metrics`, `setup_metrics`, `METRICS`), and OpenTelemetry
traces exported as OTLP/HTTP in batches (`start_tracing`, `Tracing`, `untraced`,
`context_headers`, `attached`), server spans decided at the edge (`ServerTracer`).
"""

from chassis.telemetry._logs import ACCESS_LOG, AccessLog, JsonFormatter, configure_logging
from chassis.telemetry._metrics import METRICS, Metrics, exemplar, setup_metrics
from chassis.telemetry._otlp_encoding import FastOTLPSpanExporter, encode_spans
from chassis.telemetry._tracing import (
    TRACER,
    EdgeSpan,
    ServerTracer,
    Tracing,
    attached,
    context_headers,
    current_ids,
    end_server_span,
    is_synthetic,
    server_tracer,
    span_ids,
    start_server_span,
    start_tracing,
    stop_tracing,
    untraced,
)

__all__ = [
    "ACCESS_LOG",
    "METRICS",
    "TRACER",
    "AccessLog",
    "EdgeSpan",
    "FastOTLPSpanExporter",
    "JsonFormatter",
    "Metrics",
    "ServerTracer",
    "Tracing",
    "attached",
    "configure_logging",
    "context_headers",
    "current_ids",
    "encode_spans",
    "end_server_span",
    "exemplar",
    "is_synthetic",
    "server_tracer",
    "setup_metrics",
    "span_ids",
    "start_server_span",
    "start_tracing",
    "stop_tracing",
    "untraced",
]
