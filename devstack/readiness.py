"""Readiness: every component's health, and a real API request through NGINX last."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time

import aio_pika
import asyncpg
from redis.asyncio import Redis

from devstack.localhttp import http_status
from devstack.observability import EXPORTERS, exporter_ports
from devstack.processes import show_logs
from devstack.settings import READY_TIMEOUT, StackSettings


def api_probe_url(config: StackSettings) -> str:
    """A real API request through NGINX: the last proof that the stack serves."""
    return f"http://127.0.0.1:{config.nginx_port}/api/products?limit=1"


def readiness(config: StackSettings) -> dict[str, int | None]:
    """Each component's health URL and its status now, ending with a real API request."""
    checks = {
        f"http://127.0.0.1:{config.nginx_port}/healthz": http_status(
            f"http://127.0.0.1:{config.nginx_port}/healthz"
        )
    }
    for _, _, port, _ in config.processes():
        url = f"http://127.0.0.1:{port}/health/ready"
        checks[url] = http_status(url)
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        for port in (config.prometheus_port, config.alertmanager_port):
            url = f"http://127.0.0.1:{port}/-/ready"
            checks[url] = http_status(url)
        url = f"http://127.0.0.1:{config.alert_receiver_port}/health"
        checks[url] = http_status(url)
    ports = exporter_ports(config)
    for job, binary in EXPORTERS.items():
        if shutil.which(binary):
            url = f"http://127.0.0.1:{ports[job]}/metrics"
            checks[url] = http_status(url)
    url = f"http://127.0.0.1:{ports['backups']}/metrics"
    checks[url] = http_status(url)
    # Last, once everything behind it is ready: NGINX counts a refused connection against the
    # instance, and a probe before the instances listen would take them out of rotation.
    ready = all(status == 200 for status in checks.values())
    checks[api_probe_url(config)] = http_status(api_probe_url(config)) if ready else None
    return checks


async def datastores(config: StackSettings) -> dict[str, str | None]:
    """PostgreSQL, Redis and RabbitMQ as the stack's services reach them: None for each that
    answers, else what went wrong."""

    async def postgres() -> None:
        conn = await asyncpg.connect(config.database_url, timeout=3)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    async def redis() -> None:
        client = Redis.from_url(config.redis_url, socket_timeout=3, socket_connect_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def rabbitmq() -> None:
        connection = await aio_pika.connect(config.amqp_url, timeout=3)
        await connection.close()

    async def replica() -> None:
        conn = await asyncpg.connect(config.replica_url_of(config.database_user), timeout=3)
        try:
            if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                raise RuntimeError("it is not a replica: it has been promoted")
        finally:
            await conn.close()

    checks = {
        f"PostgreSQL {config.database_host}/{config.database_name}": postgres,
        **({f"PostgreSQL replica {config.replica_host}": replica} if config.replica else {}),
        f"Redis {config.redis_url.rsplit('@', 1)[-1]}": redis,
        f"RabbitMQ {config.rabbitmq_host}/{config.rabbitmq_vhost}": rabbitmq,
    }
    found: dict[str, str | None] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=5)
            found[name] = None
        except Exception as exc:  # any failure is the answer
            found[name] = repr(exc)
    return found


def report(config: StackSettings, checks: dict[str, int | None]) -> bool:
    """Print each check; for a failed API request, the logs that say why. True if all pass."""
    for url, code in checks.items():
        print(f"{'ready' if code == 200 else 'NOT READY':<10} {url} -> {code}")
    if checks[api_probe_url(config)] != 200:
        print(
            f"the API does not answer through NGINX: read {config.log_dir / 'nginx-error.log'}"
            f" and the instances' logs ({config.log_dir / 'core-*.log'})",
            file=sys.stderr,
        )
    return all(code == 200 for code in checks.values())


def wait_ready(config: StackSettings, timeout: float = READY_TIMEOUT) -> None:
    """Block until every component answers 200, or fail with the logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(status == 200 for status in readiness(config).values()):
            return
        time.sleep(0.2)
    show_logs(config, lines=30)
    report(config, readiness(config))
    print("Relais is NOT up", file=sys.stderr)
    raise SystemExit(1)
