"""Grafana dashboards as code: `python -m scripts.dashboards` writes `infra/grafana/dashboards`.

Each dashboard is a list of panels (title, PromQL, unit). A test keeps the JSON files equal to
what this module generates, and runs every panel's query against a live Prometheus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "infra" / "grafana" / "dashboards"
# The dashboards' traffic filter (a Grafana variable): real, synthetic (load tests, probes
# that mark their requests) or both.
TRAFFIC = 'traffic=~"$traffic"'
API = f'route!~"/health/.*",{TRAFFIC}'
# Work queues, not their dead-letter and retry queues.
WORK_QUEUES = 'queue!~".*\\\\.(dlq|retry\\\\..*)"'
DEAD_LETTER_QUEUES = 'queue=~".*\\\\.dlq"'
RETRY_QUEUES = 'queue=~".*\\\\.retry\\\\..*"'
# Databases of the stack, not PostgreSQL's templates.
DATABASES = 'datname!~"template.*"'


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str = "short"
    legend: str = ""


def or_zero(expr: str, like: str, by: str) -> str:
    """`sum by (by) (expr)`, 0 (not absent) for each group of `like` that `expr` lacks: a counter
    with no child yet (no 5xx, no failure) still draws a line."""
    return f"(sum by ({by}) ({expr}) or 0 * sum by ({by}) ({like}))"


def ratio(numerator: str, denominator: str, by: str) -> str:
    """`numerator / denominator` by `by`, 0 when the numerator has no series."""
    return f"{or_zero(numerator, denominator, by)} / sum by ({by}) ({denominator})"


DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "relais-overview": (
        "Relais: overview",
        [
            Panel(
                "Requests/s by service",
                f"sum by (service) (rate(relais_http_requests_total{{{API}}}[1m]))",
                "reqps",
                "{{service}}",
            ),
            Panel(
                "Requests/s by traffic (real, or synthetic: load tests), whatever the filter",
                'sum by (traffic) (rate(relais_http_requests_total{route!~"/health/.*"}[1m]))',
                "reqps",
                "{{traffic}}",
            ),
            Panel(
                "5xx ratio by service",
                ratio(
                    f'rate(relais_http_requests_total{{status="5xx",{API}}}[1m])',
                    f"rate(relais_http_requests_total{{{API}}}[1m])",
                    "service",
                ),
                "percentunit",
                "{{service}}",
            ),
            Panel(
                "p99 latency by service",
                "histogram_quantile(0.99, sum by (service, le) "
                f"(rate(relais_http_request_duration_seconds_bucket{{{API}}}[1m])))",
                "s",
                "{{service}}",
            ),
            Panel(
                "Event-loop lag p99 by service (how long work held a loop)",
                "histogram_quantile(0.99, sum by (service, le) "
                "(rate(relais_event_loop_lag_seconds_bucket[5m])))",
                "s",
                "{{service}}",
            ),
            Panel(
                "Availability budget burn rate (1h; page at 14.4)",
                "relais:api_errors:ratio_rate1h / 0.001",
                "short",
                "{{service}}",
            ),
            Panel(
                "Latency budget burn rate (1h; page at 14.4)",
                "relais:api_slow:ratio_rate1h / 0.01",
                "short",
                "{{service}}",
            ),
            Panel(
                "Processes up",
                'sum by (service) (up{job=~"relais-.*"})',
                "short",
                "{{service}}",
            ),
        ],
    ),
    "relais-core": (
        "Relais: core",
        [
            Panel(
                "Requests/s by route",
                "sum by (route) "
                f'(rate(relais_http_requests_total{{service="core",{TRAFFIC}}}[1m]))',
                "reqps",
                "{{route}}",
            ),
            Panel(
                "p95 latency by route",
                "histogram_quantile(0.95, sum by (route, le) "
                f'(rate(relais_http_request_duration_seconds_bucket{{service="core",{TRAFFIC}}}[1m])))',
                "s",
                "{{route}}",
            ),
            Panel(
                "Requests in flight by instance",
                'sum by (instance) (relais_http_requests_in_flight{service="core"})',
                "short",
                "{{instance}}",
            ),
            Panel(
                "PostgreSQL pool: in use / open",
                'sum by (instance) (relais_db_pool_connections_in_use{service="core"})'
                ' / sum by (instance) (relais_db_pool_connections{service="core"})',
                "percentunit",
                "{{instance}}",
            ),
            Panel(
                "Product reads/s by answering tier",
                "sum by (source) (rate(relais_cache_reads_total[1m]))",
                "reqps",
                "{{source}}",
            ),
        ],
    ),
    "relais-payments": (
        "Relais: payments and messaging",
        [
            Panel(
                "Orders placed/s",
                "sum by (currency) (rate(relais_orders_created_total[1m]))",
                "ops",
                "{{currency}}",
            ),
            Panel(
                "Payments settled/s by outcome",
                "sum by (outcome) (rate(relais_payments_settled_total[1m]))",
                "ops",
                "{{outcome}}",
            ),
            Panel(
                "Decline ratio (customers' cards: not in the checkout SLO)",
                'sum(rate(relais_payments_settled_total{outcome="declined"}[5m])) '
                "/ sum(rate(relais_payments_settled_total[5m]))",
                "percentunit",
                "declined",
            ),
            Panel(
                "Captured amount/s by currency (major units)",
                "sum by (currency) "
                '(rate(relais_payments_settled_cents_total{outcome="succeeded"}[1m])) / 100',
                "short",
                "{{currency}}",
            ),
            Panel(
                "p95 settlement time",
                "histogram_quantile(0.95, sum by (le) "
                "(rate(relais_payment_settlement_seconds_bucket[5m])))",
                "s",
                "p95",
            ),
            Panel(
                "Checkout and settlement budget burn rates (1h; page at 14.4)",
                "relais:checkout_failures:ratio_rate1h / 0.05",
                "short",
                "checkout {{service}}",
            ),
            Panel(
                "Messages consumed/s by queue and type",
                "sum by (queue, type) (rate(relais_messages_consumed_total[1m]))",
                "ops",
                "{{queue}} {{type}}",
            ),
            Panel(
                "p95 handling time by queue",
                "histogram_quantile(0.95, sum by (queue, le) "
                "(rate(relais_message_handling_seconds_bucket[1m])))",
                "s",
                "{{queue}}",
            ),
            Panel(
                "Failed handlings/s by queue (retried or dead-lettered)",
                or_zero(
                    "rate(relais_messages_failed_total[5m])",
                    "rate(relais_messages_consumed_total[5m])",
                    "queue",
                ),
                "ops",
                "{{queue}}",
            ),
            Panel(
                "Outbox lag by service",
                "max by (service) (relais_outbox_lag_seconds)",
                "s",
                "{{service}}",
            ),
            Panel(
                "Outbox publishes/s by service",
                "sum by (service) (rate(relais_outbox_published_total[1m]))",
                "ops",
                "{{service}}",
            ),
            Panel(
                "Consumers running by queue",
                "sum by (queue) (relais_consumers_running)",
                "short",
                "{{queue}}",
            ),
        ],
    ),
    "relais-rabbitmq": (
        "Relais: RabbitMQ",
        [
            Panel(
                "Messages ready",
                "sum(rabbitmq_queue_messages_ready)",
                "short",
                "ready",
            ),
            Panel(
                "Messages unacked",
                "sum(rabbitmq_queue_messages_unacked)",
                "short",
                "unacked",
            ),
            Panel(
                "Published and delivered/s",
                "sum(rate(rabbitmq_global_messages_received_total[1m]))",
                "ops",
                "received",
            ),
            Panel(
                "Publisher confirms/s",
                "sum(rate(rabbitmq_global_messages_confirmed_total[1m]))",
                "ops",
                "confirmed",
            ),
            Panel(
                "Messages ready by queue",
                f"sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{WORK_QUEUES}}})",
                "short",
                "{{queue}}",
            ),
            Panel(
                "Dead letters waiting by queue",
                f"sum by (queue) (rabbitmq_detailed_queue_messages{{{DEAD_LETTER_QUEUES}}})",
                "short",
                "{{queue}}",
            ),
            Panel(
                "Messages waiting to be retried by queue",
                f"sum by (queue) (rabbitmq_detailed_queue_messages{{{RETRY_QUEUES}}})",
                "short",
                "{{queue}}",
            ),
            Panel("Connections", "sum(rabbitmq_connections)", "short", "connections"),
            Panel(
                "Resident memory",
                "sum(rabbitmq_process_resident_memory_bytes)",
                "bytes",
                "memory",
            ),
        ],
    ),
    "relais-datastores": (
        "Relais: PostgreSQL, Redis, NGINX",
        [
            Panel("PostgreSQL up", "min(pg_up)", "short", "up"),
            Panel(
                "PostgreSQL commits/s",
                f"sum(rate(pg_stat_database_xact_commit{{{DATABASES}}}[1m]))",
                "ops",
                "commits",
            ),
            Panel(
                "PostgreSQL rollbacks/s",
                f"sum(rate(pg_stat_database_xact_rollback{{{DATABASES}}}[1m]))",
                "ops",
                "rollbacks",
            ),
            Panel(
                "PostgreSQL connections by state",
                "sum by (state) (pg_stat_activity_count)",
                "short",
                "{{state}}",
            ),
            Panel(
                "PostgreSQL longest open transaction",
                "max(pg_stat_activity_max_tx_duration)",
                "s",
                "longest",
            ),
            Panel(
                "PostgreSQL buffer cache hit ratio",
                f"sum(rate(pg_stat_database_blks_hit{{{DATABASES}}}[5m])) / clamp_min("
                f"sum(rate(pg_stat_database_blks_hit{{{DATABASES}}}[5m])) + "
                f"sum(rate(pg_stat_database_blks_read{{{DATABASES}}}[5m])), 1e-9)",
                "percentunit",
                "hit ratio",
            ),
            Panel(
                "PostgreSQL deadlocks (1h)",
                f"sum(increase(pg_stat_database_deadlocks{{{DATABASES}}}[1h]))",
                "short",
                "deadlocks",
            ),
            Panel(
                "PostgreSQL database size",
                f"sum by (datname) (pg_database_size_bytes{{{DATABASES}}})",
                "bytes",
                "{{datname}}",
            ),
            Panel("Redis up", "min(redis_up)", "short", "up"),
            Panel(
                "Redis commands/s",
                "sum(rate(redis_commands_processed_total[1m]))",
                "ops",
                "commands",
            ),
            Panel(
                "Redis keyspace hit ratio",
                "sum(rate(redis_keyspace_hits_total[5m])) / clamp_min("
                "sum(rate(redis_keyspace_hits_total[5m])) + "
                "sum(rate(redis_keyspace_misses_total[5m])), 1e-9)",
                "percentunit",
                "hit ratio",
            ),
            Panel("Redis memory used", "sum(redis_memory_used_bytes)", "bytes", "used"),
            Panel("Redis clients", "sum(redis_connected_clients)", "short", "clients"),
            Panel(
                "Redis evictions/s",
                "sum(rate(redis_evicted_keys_total[5m]))",
                "ops",
                "evicted",
            ),
            Panel("NGINX up", "min(nginx_up)", "short", "up"),
            Panel(
                "NGINX requests/s",
                "sum(rate(nginx_http_requests_total[1m]))",
                "reqps",
                "requests",
            ),
            Panel(
                "NGINX connections",
                "sum(nginx_connections_active)",
                "short",
                "active",
            ),
            Panel(
                "NGINX connections waiting (keep-alive)",
                "sum(nginx_connections_waiting)",
                "short",
                "waiting",
            ),
        ],
    ),
    "relais-ai": (
        "Relais: AI worker and RPCs",
        [
            Panel(
                "RPC requests/s by method and outcome",
                "sum by (method, outcome) (rate(relais_rpc_requests_total[1m]))",
                "reqps",
                "{{method}} {{outcome}}",
            ),
            Panel(
                "RPC p95 handling time by method",
                "histogram_quantile(0.95, sum by (method, le) "
                "(rate(relais_rpc_duration_seconds_bucket[5m])))",
                "s",
                "{{method}}",
            ),
            Panel(
                "RPC p95 queue wait by method",
                "histogram_quantile(0.95, sum by (method, le) "
                "(rate(relais_rpc_queue_wait_seconds_bucket[5m])))",
                "s",
                "{{method}}",
            ),
            Panel(
                "RPC requests dropped past their deadline (1h)",
                'sum by (method) (increase(relais_rpc_requests_total{outcome="expired"}[1h]))',
                "short",
                "{{method}}",
            ),
            Panel(
                "AI model load time",
                "max by (instance, model) (relais_ai_model_load_seconds)",
                "s",
                "{{instance}} {{model}}",
            ),
            Panel(
                "AI workers up",
                'sum(up{job="relais-ai"})',
                "short",
                "up",
            ),
            Panel(
                "Search index: products per worker",
                "max by (instance) (relais_ai_index_products)",
                "short",
                "{{instance}}",
            ),
            Panel(
                "Search index lag behind the catalog",
                "max by (instance) (relais_ai_index_lag_seconds)",
                "s",
                "{{instance}}",
            ),
            Panel(
                "Embeddings: mean batch size",
                "sum(rate(relais_ai_embedding_batch_size_sum[5m])) "
                "/ sum(rate(relais_ai_embedding_batch_size_count[5m]))",
                "short",
                "texts per batch",
            ),
            Panel(
                "Embeddings: p95 model time per batch",
                "histogram_quantile(0.95, sum by (le) "
                "(rate(relais_ai_embedding_seconds_bucket[5m])))",
                "s",
                "p95",
            ),
            Panel(
                "Co-purchase model age",
                "max(relais_ai_recommendations_age_seconds)",
                "s",
                "age",
            ),
        ],
    ),
    "relais-gateway": (
        "Relais: realtime gateway",
        [
            Panel(
                "Open WebSockets by instance",
                "sum by (instance) (relais_gateway_connections)",
                "short",
                "{{instance}}",
            ),
            Panel(
                "Users routed to each instance (queue bindings)",
                "sum by (instance) (relais_gateway_users)",
                "short",
                "{{instance}}",
            ),
            Panel(
                "Messages pushed/s by type (live or replayed after a reconnect)",
                "sum by (type, via) (rate(relais_gateway_messages_pushed_total[5m]))",
                "ops",
                "{{type}} {{via}}",
            ),
            Panel(
                "Push latency from the event's creation (p50, p99)",
                " or ".join(
                    f"label_replace(histogram_quantile({q}, sum by (le) (rate("
                    f'relais_gateway_push_latency_seconds_bucket[5m]))), "q", "{name}", "", "")'
                    for q, name in ((0.5, "p50"), (0.99, "p99"))
                ),
                "s",
                "{{q}}",
            ),
            Panel(
                "Sockets dropped by the gateway/s, by reason",
                "sum by (reason) (rate(relais_gateway_drops_total[5m]))",
                "ops",
                "{{reason}}",
            ),
            Panel(
                "Events journaled for reconnecting clients/s",
                "sum(rate(relais_gateway_events_journaled_total[5m]))",
                "ops",
                "journaled",
            ),
            Panel(
                "Reconnections with last_event_id (1h), by outcome",
                "sum by (outcome) (increase(relais_gateway_resumes_total[1h]))",
                "short",
                "{{outcome}}",
            ),
            Panel(
                "Gateway instances up",
                'sum(up{job="relais-gateway"})',
                "short",
                "up",
            ),
        ],
    ),
}


def traffic_variable() -> dict[str, Any]:
    """The `$traffic` filter: all traffic by default, or real or synthetic alone."""
    options = [("All", "$__all"), ("real", "real"), ("synthetic", "synthetic")]
    return {
        "name": "traffic",
        "label": "Traffic",
        "type": "custom",
        "query": "real,synthetic",
        "includeAll": True,
        "allValue": ".*",
        "multi": False,
        "current": {"text": "All", "value": "$__all"},
        "options": [
            {"text": text, "value": value, "selected": value == "$__all"} for text, value in options
        ],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    """A Grafana dashboard of time-series panels, two per row, on the Prometheus datasource;
    with the traffic filter if a panel reads it."""
    datasource = {"type": "prometheus", "uid": "prometheus"}
    filtered = any("$traffic" in panel.expr for panel in panels)
    return {
        "uid": uid,
        "title": title,
        "tags": ["relais"],
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [traffic_variable()] if filtered else []},
        "panels": [
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": "A",
                        "datasource": datasource,
                        "expr": panel.expr,
                        "legendFormat": panel.legend,
                        "exemplar": True,
                    }
                ],
            }
            for index, panel in enumerate(panels)
        ],
    }


def render() -> dict[str, str]:
    """Every dashboard's file name and JSON text."""
    return {
        f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


def main() -> None:
    """Write the dashboards."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(OUT / name)


if __name__ == "__main__":
    main()
