"""The services as processes: their environment, and their own commands (check, migrate,
permissions)."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

from chassis.messaging import BrokerPermissions
from devstack.settings import (
    AI_SCHEMA,
    LOAD_TEST_WRITE_LIMIT,
    PAYMENTS_SCHEMA,
    ROOT,
    StackSettings,
)


def run_service_command(module: str, argv: list[str], env: dict[str, str]) -> str:
    """Run a service's command (`python -m <module> ...`) as a process; its output."""
    result = subprocess.run(
        [sys.executable, "-m", module, *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()
        raise SystemExit(f"{module} {' '.join(argv)} failed:\n" + "\n".join(reason[-12:]))
    return result.stdout


@functools.cache
def broker_permissions(module: str) -> BrokerPermissions:
    """What a service's broker user may do, as `python -m <module> permissions` prints it."""
    data = json.loads(run_service_command(module, ["permissions"], dict(os.environ)))
    topics = {name: (write, read) for name, (write, read) in data.pop("topics").items()}
    return BrokerPermissions(**data, topics=topics)


def tracing_enabled(config: StackSettings) -> bool:
    """Trace unless `OTEL_SDK_DISABLED` says otherwise or nothing listens at the OTLP
    endpoint (no Jaeger running): spans with nowhere to go would only fill the logs."""
    disabled = os.environ.get("OTEL_SDK_DISABLED")
    if disabled:
        return disabled.strip().lower() != "true"
    url = urllib.parse.urlsplit(config.otlp_endpoint)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 4318), 1).close()
    except OSError:
        return False
    return True


# The services with reads that tolerate lag (the catalog list; the daily report).
REPLICA_READERS = {"core", "payments"}


def service_env(
    config: StackSettings, name: str, port: int, metrics_port: int, *, traced: bool
) -> dict[str, str]:
    """The environment of one service process (`traced`: exporting spans)."""
    env = dict(os.environ)
    kind = name.rsplit("-", 1)[0]
    database_user, schema = {
        "payments": (config.payments_database_user, PAYMENTS_SCHEMA),
        "ai": (config.ai_database_user, AI_SCHEMA),
    }.get(kind, (config.database_user, "core"))
    users = {
        "core": config.rabbitmq_core_user,
        "payments": config.rabbitmq_payments_user,
        "ai": config.rabbitmq_ai_user,
        "gateway": config.rabbitmq_gateway_user,
    }
    env.update(
        {
            "SERVICE_NAME": kind,
            "HTTP_PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "DATABASE_URL": config.database_url_of(database_user),
            "DATABASE_SCHEMA": schema,
            "AMQP_URL": config.amqp_url_of(users[kind]),
            "REDIS_URL": config.redis_url,
            "REDIS_KEY_PREFIX": config.redis_key_prefix,
            "JWT_PRIVATE_KEY_FILE": str(config.key_dir / "jwt-private.pem"),
            "JWT_PUBLIC_KEY_FILE": str(config.key_dir / "jwt-public.pem"),
            "PAYMENTS_WEBHOOK_SECRET_FILE": str(config.key_dir / "webhook-secret"),
            "PUBLIC_URL": config.public_url,
            "PYTHONUNBUFFERED": "1",
            "OTEL_SERVICE_NAME": kind,
            "OTEL_EXPORTER_OTLP_ENDPOINT": config.otlp_endpoint,
            "OTEL_SDK_DISABLED": str(not traced).lower(),
        }
    )
    env.pop("DATABASE_REPLICA_URL", None)
    if config.replica and kind in REPLICA_READERS:
        env["DATABASE_REPLICA_URL"] = config.replica_url_of(database_user)
    if config.load_test_limits:
        env["WRITE_RATE_LIMIT"] = LOAD_TEST_WRITE_LIMIT
    env.pop("HTTP_UNIX_SOCKET", None)
    if config.nginx_upstream == "unix":
        env["HTTP_UNIX_SOCKET"] = str(config.unix_socket(name))
    return env


def check_settings(config: StackSettings, *, traced: bool) -> None:
    """Refuse at once what a service would refuse at its start (RELAIS_ENV=production with the
    development secrets, say), with its reason, rather than report a process that died."""
    checked = set()
    for name, module, port, metrics_port in config.processes():
        if module in checked:
            continue
        checked.add(module)
        env = service_env(config, name, port, metrics_port, traced=traced)
        run_service_command(module, ["check"], env)
