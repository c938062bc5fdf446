"""A throwaway native stack's names and ports, and its removal: the e2e tests and the game day
run one beside the developer's, on free ports, with a database, vhost and key prefix of its own."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

from redis.asyncio import Redis

from devstack.backups import dumps_root
from devstack.broker import drop_broker
from devstack.database import drop_database
from devstack.replica import remove_replica
from devstack.settings import ROOT, StackSettings


def _ephemeral_floor() -> int:
    """The lowest port the kernel gives outgoing connections: ports below it are never taken by
    a connection the stack's processes open (to PostgreSQL, Redis, RabbitMQ) between the moment
    a port is picked and the moment a server binds it."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def consecutive_free(count: int) -> int:
    """The first of `count` consecutive ports free now, below the ephemeral range."""
    ceiling = min(_ephemeral_floor(), 65535) - count
    for _ in range(1000):
        base = random.randrange(10_000, ceiling)  # noqa: S311 - not a secret
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now, below the ephemeral range."""
    ports: list[int] = []
    while len(ports) < count:
        port = consecutive_free(1)
        if port not in ports:
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def scratch_env(name: str) -> dict[str, str]:
    """The settings (as environment variables) of a stack called `name` (`relais_e2e_1a2b`):
    its database, roles, vhost, users and Redis key prefix after it, every port free now."""
    # Ports are free when picked, not reserved: pick again until no two of them coincide.
    while True:
        singles = free_ports(11)
        # Two core instances; one payments worker; the AI worker and one started by hand; two
        # gateway instances.
        widths = [2, 2, 1, 1, 2, 2, 2, 2]
        bases = [consecutive_free(width) for width in widths]
        spans = zip(bases, widths, strict=True)
        taken = [*singles, *(base + i for base, width in spans for i in range(width))]
        if len(set(taken)) == len(taken):
            break
    nginx_port, tls_port, prometheus_port, alertmanager_port, receiver_port, *exporters = singles
    return {
        "NGINX_PORT": str(nginx_port),
        "NGINX_TLS_PORT": str(tls_port),
        "CORE_BASE_PORT": str(bases[0]),
        "METRICS_BASE_PORT": str(bases[1]),
        "PAYMENTS_BASE_PORT": str(bases[2]),
        "PAYMENTS_METRICS_BASE_PORT": str(bases[3]),
        "AI_BASE_PORT": str(bases[4]),
        "AI_METRICS_BASE_PORT": str(bases[5]),
        "GATEWAY_BASE_PORT": str(bases[6]),
        "GATEWAY_METRICS_BASE_PORT": str(bases[7]),
        "DATABASE_NAME": name,
        "PAYMENTS_DATABASE_USER": f"{name}_payments",
        "PAYMENTS_OWNER_USER": f"{name}_payments_owner",
        "AI_DATABASE_USER": f"{name}_ai",
        "MONITOR_DATABASE_USER": f"{name}_monitor",
        "RABBITMQ_CORE_USER": f"{name}_core",
        "RABBITMQ_PAYMENTS_USER": f"{name}_payments",
        "RABBITMQ_AI_USER": f"{name}_ai",
        "RABBITMQ_GATEWAY_USER": f"{name}_gateway",
        "RABBITMQ_VHOST": name,
        "PROMETHEUS_PORT": str(prometheus_port),
        "ALERTMANAGER_PORT": str(alertmanager_port),
        "ALERT_RECEIVER_PORT": str(receiver_port),
        "NGINX_EXPORTER_PORT": str(exporters[0]),
        "POSTGRES_EXPORTER_PORT": str(exporters[1]),
        "REDIS_EXPORTER_PORT": str(exporters[2]),
        "PROCESS_EXPORTER_PORT": str(exporters[3]),
        "BACKUP_EXPORTER_PORT": str(exporters[4]),
        "REPLICA_PORT": str(exporters[5]),
        "REDIS_KEY_PREFIX": f"{name.replace('_', '-')}:",
    }


# Settings a developer's shell may hold that would point a scratch stack at another's parts.
INHERITED = {"DATABASE_URL", "HTTP_PORT", "METRICS_PORT", "AMQP_URL", "RELAIS_STATE_DIR"}


def scratch_stack(
    name: str, state: Path, settings: dict[str, str]
) -> tuple[dict[str, str], StackSettings]:
    """The environment of a scratch stack called `name` run from this checkout with its state
    in `state` and `settings` over its names and ports (nothing of the caller's shell pointing
    it at another stack's parts), and its configuration as `devstack` will read it."""
    env = {**os.environ, **scratch_env(name), "RELAIS_STATE_DIR": str(state), **settings}
    for key in INHERITED - {"RELAIS_STATE_DIR"}:
        env.pop(key, None)
    with mock.patch.dict(os.environ, env, clear=True):
        config = StackSettings()
    return env, config


def run_devstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack ARGS` from this checkout with a scratch stack's environment."""
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def remove_scratch(config: StackSettings) -> None:
    """Drop a stopped scratch stack's database, roles, vhost, users and Redis keys."""
    asyncio.run(drop_database(config))
    drop_broker(config)
    asyncio.run(clean_redis(config.redis_key_prefix))
    shutil.rmtree(dumps_root(config), ignore_errors=True)
    remove_replica(config)


async def clean_redis(prefix: str) -> None:
    """Delete every key under `prefix`."""
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()
