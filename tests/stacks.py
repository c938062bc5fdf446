"""A native stack of a test's own: `make up` from a copy of this checkout in a private folder,
on free ports, with its own database, vhost and key prefix, torn down afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from redis.asyncio import Redis

from devstack import StackSettings, drop_broker, drop_database

ROOT = Path(__file__).resolve().parent.parent
# What a copy of the checkout leaves out: history, the virtualenv, state and caches.
UNCOPIED = (".git", ".venv", "var", "__pycache__", "*_cache", "*.egg-info")


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
        base = random.randrange(10_000, ceiling)
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


@contextlib.contextmanager
def native_stack(settings: dict[str, str]) -> Iterator[dict[str, Any]]:
    """`make up` with `settings` over the stack's own names and ports; `make down` after."""
    run = uuid.uuid4().hex[:8]
    # Ports are free when picked, not reserved: pick again until no two of them coincide.
    while True:
        singles = free_ports(9)
        # Two core instances; one payments worker; the AI worker and one started by hand; two
        # gateway instances.
        widths = [2, 2, 1, 1, 2, 2, 2, 2]
        bases = [consecutive_free(width) for width in widths]
        spans = zip(bases, widths, strict=True)
        taken = [*singles, *(base + i for base, width in spans for i in range(width))]
        if len(set(taken)) == len(taken):
            break
    nginx_port, tls_port, prometheus_port, alertmanager_port, receiver_port, *exporters = singles
    # `make up` from a copy of this checkout in a private folder (0700, as a home folder is),
    # with the default state folder inside it; the copy shares this checkout's virtualenv.
    home = Path(tempfile.mkdtemp(prefix="relais-home-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    checkout = home / "relais"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*UNCOPIED))
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    env = {
        **os.environ,
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
        "DATABASE_NAME": f"relais_e2e_{run}",
        "PAYMENTS_DATABASE_USER": f"relais_e2e_{run}_payments",
        "PAYMENTS_OWNER_USER": f"relais_e2e_{run}_payments_owner",
        "AI_DATABASE_USER": f"relais_e2e_{run}_ai",
        "MONITOR_DATABASE_USER": f"relais_e2e_{run}_monitor",
        "RABBITMQ_CORE_USER": f"relais_e2e_{run}_core",
        "RABBITMQ_PAYMENTS_USER": f"relais_e2e_{run}_payments",
        "RABBITMQ_AI_USER": f"relais_e2e_{run}_ai",
        "RABBITMQ_GATEWAY_USER": f"relais_e2e_{run}_gateway",
        "RABBITMQ_VHOST": f"relais_e2e_{run}",
        "PROMETHEUS_PORT": str(prometheus_port),
        "ALERTMANAGER_PORT": str(alertmanager_port),
        "ALERT_RECEIVER_PORT": str(receiver_port),
        "NGINX_EXPORTER_PORT": str(exporters[0]),
        "POSTGRES_EXPORTER_PORT": str(exporters[1]),
        "REDIS_EXPORTER_PORT": str(exporters[2]),
        "PROCESS_EXPORTER_PORT": str(exporters[3]),
        "REDIS_KEY_PREFIX": f"relais-e2e:{run}:",
        **settings,
    }
    for key in list(env):
        if key in {"DATABASE_URL", "HTTP_PORT", "METRICS_PORT", "AMQP_URL", "RELAIS_STATE_DIR"}:
            del env[key]

    def make(
        *targets: str, check: bool = True, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run make in the stack's checkout; `extra` adds to (or overrides) its environment."""
        return subprocess.run(
            ["make", "--no-print-directory", *targets],
            cwd=checkout,
            env={**env, **(extra or {})},
            text=True,
            capture_output=True,
            timeout=300,
            check=check,
        )

    # The stack as `make` sees it: its environment, and the default state folder of the copy.
    with mock.patch.dict(os.environ, env, clear=True):
        config = StackSettings(state_dir=checkout / "var")
    try:
        result = make("up", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        yield {
            "env": env,
            "make": make,
            "config": config,
            "base": f"http://127.0.0.1:{nginx_port}",
            "tls": f"https://127.0.0.1:{tls_port}",
            "up_output": result.stdout,
        }
    finally:
        make("down", check=False)
        asyncio.run(drop_database(config))
        drop_broker(config)
        asyncio.run(_clean_redis(env["REDIS_KEY_PREFIX"]))
        shutil.rmtree(home, ignore_errors=True)


async def _clean_redis(prefix: str) -> None:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()
