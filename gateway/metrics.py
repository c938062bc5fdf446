"""The gateway's own metrics, in the process's registry beside the chassis' RED and consumer
ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from chassis.telemetry import Metrics

# Why the gateway closed a socket itself (`relais_gateway_drops_total`).
DROP_REASONS = ("slow_client", "dead_peer", "token_expired", "token_revoked", "shutdown")
# From the event's creation (core's or the payments service's transaction) to the socket.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class GatewayMetrics:
    """Sockets open, messages pushed and how late, sockets dropped and why, events journaled."""

    def __init__(self, metrics: Metrics) -> None:
        self.service = service = metrics.service
        registry = metrics.registry
        self.connections = Gauge(
            "relais_gateway_connections",
            "WebSocket connections open on this instance.",
            ["service"],
            registry=registry,
        ).labels(service)
        self.users = Gauge(
            "relais_gateway_users",
            "Users with at least one socket on this instance (each a binding of its queue).",
            ["service"],
            registry=registry,
        ).labels(service)
        self.pushed = Counter(
            "relais_gateway_messages_pushed_total",
            "Messages sent to sockets, by event type, live or replayed to a reconnecting client.",
            ["service", "type", "via"],
            registry=registry,
        )
        self.latency = Histogram(
            "relais_gateway_push_latency_seconds",
            "From the event's creation to its send on a socket (live pushes).",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(service)
        self.drops = Counter(
            "relais_gateway_drops_total",
            "Sockets the gateway closed itself, by reason.",
            ["service", "reason"],
            registry=registry,
        )
        self.journaled = Counter(
            "relais_gateway_events_journaled_total",
            "Events recorded for clients that reconnect (each once, by whichever instance "
            "first had it).",
            ["service"],
            registry=registry,
        ).labels(service)
        self.resumes = Counter(
            "relais_gateway_resumes_total",
            "Reconnections with `last_event_id`: resumed where the client left off, or sent "
            "everything kept with a `resync` first (its last event was no longer kept).",
            ["service", "outcome"],
            registry=registry,
        )
        for reason in DROP_REASONS:
            self.drops.labels(service, reason)
        for outcome in ("resumed", "resync"):
            self.resumes.labels(service, outcome)

    def dropped(self, reason: str) -> None:
        """Count a socket the gateway closed."""
        self.drops.labels(self.service, reason).inc()

    def sent(self, kind: str, via: str) -> None:
        """Count a message sent."""
        self.pushed.labels(self.service, kind, via).inc()
