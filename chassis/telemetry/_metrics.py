"""Prometheus metrics of one process, served on their own port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from chassis.settings import SETTINGS
from chassis.telemetry._tracing import TraceIds, current_ids

METRICS = web.AppKey["Metrics"]("metrics")

# Few buckets: prometheus_client scans them linearly on every observation.
# Any other method is counted as OTHER, so clients cannot mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request observations are queued and applied in batches (at scrape, or at this many).
PENDING_LIMIT = 4096
# The `traffic` label of a request: from users, or marked synthetic (a load test, a probe).
REAL, SYNTHETIC = "real", "synthetic"
# The status classes a request is counted under (`2xx` …).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# How a server ended an RPC request.
RPC_OUTCOMES = ("ok", "refused", "unavailable", "error", "expired")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# How late the event loop runs a timer: a probe every LOOP_PROBE_INTERVAL seconds.
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_PROBE_INTERVAL = 0.25
# Getting a pooled connection: microseconds when one is idle, the wait for one when none is.
POOL_WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# An RPC may work for as long as its deadline (a minute of speech is transcribed in about 12 s).
RPC_BUCKETS = (*LATENCY_BUCKETS, 10.0, 30.0)


class Metrics:
    """The RED and resource metrics of one service process, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, memory, open files: what the default registry would have.
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "relais_http_requests_total",
            "HTTP requests handled, by route template, status class and traffic (real, or "
            "synthetic: marked by a load test or a probe).",
            ["service", "method", "route", "status", "traffic"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "relais_http_request_duration_seconds",
            "HTTP request latency, by route template and traffic (real or synthetic).",
            ["service", "method", "route", "traffic"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "relais_http_requests_in_flight",
            "HTTP requests being handled now.",
            ["service"],
            registry=self.registry,
        )
        self.db_pool_size = Gauge(
            "relais_db_pool_connections",
            "Connections open in the PostgreSQL pool.",
            ["service"],
            registry=self.registry,
        )
        self.db_pool_in_use = Gauge(
            "relais_db_pool_connections_in_use",
            "PostgreSQL pool connections lent out now.",
            ["service"],
            registry=self.registry,
        )
        self.db_pool_waiting = Gauge(
            "relais_db_pool_waiting",
            "Callers waiting for a PostgreSQL pool connection now (the pool is exhausted).",
            ["service"],
            registry=self.registry,
        )
        self.db_pool_wait = Histogram(
            "relais_db_pool_acquire_seconds",
            "Time to get a PostgreSQL pool connection (near 0 until the pool runs out).",
            ["service"],
            buckets=POOL_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.db_replica_lag = Gauge(
            "relais_db_replica_lag_seconds",
            "How far the streaming replica's replay is behind the primary, as this service "
            "last measured it (0 when it has replayed all it received).",
            ["service"],
            registry=self.registry,
        )
        self.db_replica_up = Gauge(
            "relais_db_replica_up",
            "1 when the streaming replica answered this service's last lag measurement, else 0.",
            ["service"],
            registry=self.registry,
        )
        self.db_replica_usable = Gauge(
            "relais_db_replica_usable",
            "1 while the replica answers within the lag this service tolerates, else 0 (its "
            "lag-tolerant reads then go to the primary).",
            ["service"],
            registry=self.registry,
        )
        self.db_lag_tolerant_reads = Counter(
            "relais_db_lag_tolerant_reads_total",
            "Reads that tolerate lag, by the server that answered: replica, primary (no usable "
            "replica) or fallback (the replica failed the read).",
            ["service", "source"],
            registry=self.registry,
        )
        self.cache = Counter(
            "relais_cache_reads_total",
            "Cache reads by cache and by the tier that answered (near, redis, database).",
            ["service", "cache", "source"],
            registry=self.registry,
        )
        self.messages_consumed = Counter(
            "relais_messages_consumed_total",
            "Messages received from RabbitMQ, by queue and contract type.",
            ["service", "queue", "type"],
            registry=self.registry,
        )
        self.messages_redelivered = Counter(
            "relais_messages_redelivered_total",
            "Messages the broker delivered again (an earlier delivery was not acked).",
            ["service", "queue"],
            registry=self.registry,
        )
        self.messages_failed = Counter(
            "relais_messages_failed_total",
            "Messages whose handling raised (then retried or dead-lettered).",
            ["service", "queue", "type"],
            registry=self.registry,
        )
        self.messages_dead_lettered = Counter(
            "relais_messages_dead_lettered_total",
            "Messages sent to a dead-letter queue by a consumer, by reason.",
            ["service", "queue", "reason"],
            registry=self.registry,
        )
        self.message_latency = Histogram(
            "relais_message_handling_seconds",
            "Time to handle one message, from delivery to ack.",
            ["service", "queue", "type"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rpcs = Counter(
            "relais_rpc_requests_total",
            "RPC requests a server took, by method and outcome (ok, refused: a bad request, "
            "error: the handler failed, expired: its caller had given up, dropped unworked).",
            ["service", "method", "outcome"],
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "relais_rpc_duration_seconds",
            "Time a server took to answer an RPC request, from taking it to its reply.",
            ["service", "method"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.rpc_wait = Histogram(
            "relais_rpc_queue_wait_seconds",
            "Time an RPC request waited between its caller and a server.",
            ["service", "method"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.outbox_lag = Gauge(
            "relais_outbox_lag_seconds",
            "Age of the oldest outbox row not yet published (0 when drained).",
            ["service"],
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "relais_outbox_published_total",
            "Outbox rows published with a broker confirm.",
            ["service"],
            registry=self.registry,
        )
        self.consumers = Gauge(
            "relais_consumers_running",
            "Consumers of a queue running in this process (0: it takes no messages).",
            ["service", "queue"],
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "relais_event_loop_lag_seconds",
            "How late the event loop ran a timer due now (a probe every 0.25 s): how long "
            "callbacks and coroutines held the loop without yielding.",
            ["service"],
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        ).labels(service)
        self.access_log_dropped = Counter(
            "relais_access_log_dropped_total",
            "Access log lines dropped: the buffer was full, or writing them failed.",
            ["service"],
            registry=self.registry,
        ).labels(service)
        self.service = service
        # A plain int read at scrape time: two lock round trips per request otherwise.
        self.in_flight_now = 0
        self.in_flight.labels(service).set_function(lambda: self.in_flight_now)
        self._children: dict[tuple[str, str, int, bool], tuple[Counter, Histogram]] = {}
        self._pending: list[tuple[str, str, int, float, TraceIds | None, bool]] = []

    def observe(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        ids: TraceIds | None = None,
        *,
        synthetic: bool = False,
    ) -> None:
        """Count one finished request (served in the trace `ids`; `synthetic` traffic apart):
        queued here, applied in a batch by `drain()`."""
        self._pending.append((method, route, status, seconds, ids, synthetic))
        if len(self._pending) >= PENDING_LIMIT:
            self.drain()

    def drain(self) -> None:
        """Apply the queued observations (every scrape calls this first)."""
        pending, self._pending = self._pending, []
        for method, route, status, seconds, ids, synthetic in pending:
            if method not in KNOWN_METHODS:
                method = "OTHER"
            key = (method, route, status // 100, synthetic)
            children = self._children.get(key)
            if children is None:  # `labels()` is slow: keep each labelled child
                traffic = SYNTHETIC if synthetic else REAL
                children = self._children[key] = (
                    self.requests.labels(
                        self.service, method, route, f"{status // 100}xx", traffic
                    ),
                    self.latency.labels(self.service, method, route, traffic),
                )
            children[0].inc()
            children[1].observe(seconds, exemplar(ids))

    def declare_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Create the request series of every (method, route template) at 0, for each status
        class: a counter born at its first increment hides that increment from `increase()`
        and `rate()`, so the first 5xx of a route would never reach the SLO. Real traffic's
        only: synthetic series are born with the load that makes them."""
        for method, route in routes:
            if method not in KNOWN_METHODS:
                continue
            self.latency.labels(self.service, method, route, REAL)
            for status_class in STATUS_CLASSES:
                self.requests.labels(self.service, method, route, status_class, REAL)

    def declare_queue(self, queue: str, reasons: Iterable[str]) -> None:
        """Create a consumed queue's dead-letter series at 0, one per reason it can give."""
        for reason in reasons:
            self.messages_dead_lettered.labels(self.service, queue, reason)

    def declare_rpc(self, method: str) -> None:
        """Create a served method's series at 0, for each outcome."""
        self.rpc_latency.labels(self.service, method)
        self.rpc_wait.labels(self.service, method)
        for outcome in RPC_OUTCOMES:
            self.rpcs.labels(self.service, method, outcome)

    def rpc_served(self, method: str, outcome: str, seconds: float) -> None:
        """Count an RPC request a server took, and how long it took."""
        self.rpcs.labels(self.service, method, outcome).inc()
        if outcome != "expired":
            self.rpc_latency.labels(self.service, method).observe(seconds, exemplar(current_ids()))

    def rpc_waited(self, method: str, seconds: float) -> None:
        """Record how long an RPC request waited for a server."""
        self.rpc_wait.labels(self.service, method).observe(seconds)

    def consumed(self, queue: str, kind: str, *, redelivered: bool) -> None:
        """Count a delivery."""
        self.messages_consumed.labels(self.service, queue, kind).inc()
        if redelivered:
            self.messages_redelivered.labels(self.service, queue).inc()

    def message_failed(self, queue: str, kind: str) -> None:
        """Count a delivery whose handling raised."""
        self.messages_failed.labels(self.service, queue, kind).inc()

    def dead_lettered(self, queue: str, reason: str) -> None:
        """Count a message a consumer dead-lettered."""
        self.messages_dead_lettered.labels(self.service, queue, reason).inc()

    def handled(self, queue: str, kind: str, seconds: float) -> None:
        """Record how long a message took to handle."""
        self.message_latency.labels(self.service, queue, kind).observe(
            seconds, exemplar(current_ids())
        )

    def expose(self, accept: str) -> tuple[bytes, str]:
        """The current metrics in the format `accept` asks for, and its content type."""
        self.drain()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def exemplar(ids: TraceIds | None) -> dict[str, str] | None:
    """The OpenMetrics exemplar linking an observation to its trace, if that was exported."""
    return {"trace_id": ids[0]} if ids is not None and ids[2] else None


def setup_metrics(app: web.Application, service: str) -> Metrics:
    """Attach a `Metrics` to the app and serve it on `METRICS_PORT` while the app runs."""
    metrics = Metrics(service)
    app[METRICS] = metrics
    app.cleanup_ctx.append(_metrics_server)
    return metrics


async def _metrics_server(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    metrics.declare_routes(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    )
    probe = asyncio.create_task(probe_loop_lag(metrics), name="event-loop lag probe")
    try:
        if not settings.metrics_port:
            yield
            return
        async with _exposed(metrics, settings.http_host, settings.metrics_port):
            yield
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe


async def probe_loop_lag(metrics: Metrics, interval: float = LOOP_PROBE_INTERVAL) -> None:
    """Measure, for the app's life, how late the loop wakes a timer that is due."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        metrics.loop_lag.observe(max(0.0, loop.time() - started - interval))


@contextlib.asynccontextmanager
async def _exposed(metrics: Metrics, host: str, port: int) -> AsyncIterator[None]:
    """Serve `/metrics` on its own port."""

    async def expose(request: web.Request) -> web.Response:
        body, content_type = metrics.expose(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", expose)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()
