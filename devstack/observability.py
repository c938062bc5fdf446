"""Prometheus, Alertmanager and the exporters."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

from devstack.alerts import notification_store, render_alertmanager
from devstack.durations import scale_rules, seconds_of
from devstack.nginx import nginx_status_socket
from devstack.processes import start_process
from devstack.settings import PROMETHEUS_DIR, StackSettings


def render_prometheus(config: StackSettings) -> Path:
    """Write Prometheus' config for this stack: every process's metrics port, the rules, the
    Alertmanager; the checked-in `infra/prometheus/prometheus.yml` is the default-ports copy."""
    base = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    base["global"]["scrape_interval"] = config.scrape_interval
    base["global"]["evaluation_interval"] = config.scrape_interval
    base["rule_files"] = [str(render_rules(config) / "*.yml")]
    base["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{config.alertmanager_port}"
    ]
    jobs: dict[str, list[str]] = {}
    for name, _, _, metrics_port in config.processes():
        service = name.rsplit("-", 1)[0]
        jobs.setdefault(service, []).append(f"127.0.0.1:{metrics_port}")
    base["scrape_configs"] = [
        {
            "job_name": f"relais-{service}",
            "static_configs": [{"targets": targets, "labels": {"service": service}}],
        }
        for service, targets in jobs.items()
    ] + [job for job in base["scrape_configs"] if not job["job_name"].startswith("relais-")]
    ports = exporter_ports(config)
    for job in base["scrape_configs"]:
        if job["job_name"] == "rabbitmq-queues":
            job["params"]["vhost"] = [config.rabbitmq_vhost]
        if job["job_name"] == "postgres" and seconds_of(config.scrape_interval) < SLOW_EXPORTER:
            # With PostgreSQL unreachable its exporter answers only after a 1 s connect attempt:
            # a shorter scrape timeout (a game day's 1 s) would hide `pg_up 0` behind `up 0`.
            job["scrape_interval"] = job["scrape_timeout"] = f"{SLOW_EXPORTER:g}s"
        if job["job_name"] in ports:
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{ports[job['job_name']]}"]
    path = config.run_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


# The shortest scrape the PostgreSQL exporter can answer when PostgreSQL cannot be reached.
SLOW_EXPORTER = 2.0

# The runbooks' base URL in the checked-in rules: the default stack's NGINX.
RUNBOOK_BASE = "http://127.0.0.1:8080/docs/runbooks/"


def render_rules(config: StackSettings) -> Path:
    """The alert rules with `runbook_url` on this stack's runbook base URL (the checked-in rules
    carry the default stack's), their windows and `for:` divided by the game day's clock."""
    folder = config.run_dir / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    for rules in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        text = rules.read_text().replace(
            f"runbook_url: {RUNBOOK_BASE}", f"runbook_url: {config.runbooks_url}"
        )
        (folder / rules.name).write_text(scale_rules(text, config.alert_time_scale))
    return folder


# The exporters `make up` runs: Prometheus job -> Debian's binary.
EXPORTERS = {
    "nginx": "prometheus-nginx-exporter",
    "postgres": "prometheus-postgres-exporter",
    "redis": "prometheus-redis-exporter",
    "process": "prometheus-process-exporter",
}


def exporter_ports(config: StackSettings) -> dict[str, int]:
    """The port of each exporter `make up` runs, by the Prometheus job that scrapes it."""
    return {
        "nginx": config.nginx_exporter_port,
        "postgres": config.postgres_exporter_port,
        "redis": config.redis_exporter_port,
        "process": config.process_exporter_port,
        "backups": config.backup_exporter_port,
    }


def start_exporters(config: StackSettings) -> None:
    """Start the NGINX, PostgreSQL, Redis and process exporters (Debian packages `make up`
    installs)."""
    ports = exporter_ports(config)
    commands = {
        "nginx-exporter": [
            EXPORTERS["nginx"],
            f"-nginx.scrape-uri=unix:{nginx_status_socket(config)}:/stub_status",
            f"-web.listen-address=127.0.0.1:{ports['nginx']}",
        ],
        "postgres-exporter": [
            EXPORTERS["postgres"],
            f"--web.listen-address=127.0.0.1:{ports['postgres']}",
        ],
        "redis-exporter": [
            EXPORTERS["redis"],
            f"-redis.addr={config.redis_url}",
            f"-web.listen-address=127.0.0.1:{ports['redis']}",
        ],
        # CPU, memory and threads of each group of processes (no smaps, no per-thread series:
        # reading them costs more than a scrape should)
        "process-exporter": [
            EXPORTERS["process"],
            f"-config.path={PROMETHEUS_DIR / 'process-exporter.yml'}",
            "-gather-smaps=false",
            "-threads=false",
            f"-web.listen-address=127.0.0.1:{ports['process']}",
        ],
    }
    # Backups' age, WAL archiving, replication slots (ours: it reads pgBackRest's repository).
    start_process(
        "backup-exporter",
        [sys.executable, "-m", "devstack.backup_exporter", f"--port={ports['backups']}"],
        dict(os.environ),
        config,
    )
    # Its own role, with pg_monitor and nothing else.
    # It watches one server: the first listed (lib/pq takes one host).
    first = config.database_host.split(",")[0]
    dsn = config.database_url_of(config.monitor_database_user, first) + "?sslmode=disable"
    for name, argv in commands.items():
        binary = shutil.which(argv[0])
        if binary is None:
            print(f"{argv[0]} is not installed: `make up` installs it")
            continue
        env = {**os.environ, "DATA_SOURCE_NAME": dsn} if name == "postgres-exporter" else None
        start_process(name, [binary, *argv[1:]], env or dict(os.environ), config)


def start_observability(config: StackSettings) -> None:
    """Start Prometheus and Alertmanager with the project's config (installed by `make up`)."""
    prometheus, alertmanager = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if prometheus is None or alertmanager is None:
        print("Prometheus or Alertmanager is not installed: `make up` installs them")
        return
    data = config.state_dir / "data"
    start_process(
        "prometheus",
        [
            prometheus,
            f"--config.file={render_prometheus(config)}",
            f"--storage.tsdb.path={data / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{config.prometheus_port}",
            "--storage.tsdb.retention.time=7d",
            # Latency buckets carry trace ids: keep them, so Grafana links a slow bucket to Jaeger.
            "--enable-feature=exemplar-storage",
        ],
        dict(os.environ),
        config,
    )
    start_process(
        "alert-receiver",
        [
            sys.executable,
            "-m",
            "devstack.receiver",
            f"--port={config.alert_receiver_port}",
            f"--store={notification_store(config)}",
        ],
        dict(os.environ),
        config,
    )
    start_process(
        "alertmanager",
        [
            alertmanager,
            f"--config.file={render_alertmanager(config)}",
            f"--storage.path={data / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{config.alertmanager_port}",
            "--cluster.listen-address=",
        ],
        dict(os.environ),
        config,
    )
