"""The native stack: `python -m scripts.stack up|down|status|logs`.

`up` prepares what is missing (development keys and certificate, the PostgreSQL roles and
database, migrations, the RabbitMQ vhost and user), starts N core instances, the payments
worker(s) and NGINX in the background, and waits until every one is ready. Running it again
starts only what is not running. `down` stops everything `up` started. Every path, port and
name comes from the environment (see README), so a test can run a stack of its own beside a
developer's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from chassis.messaging import BrokerPermissions
from chassis.settings import DEV_MARKER

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "nginx" / "relais.conf.template"
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "infra" / "alertmanager" / "alertmanager.yml"
READY_TIMEOUT = 60.0
# The schema the payments service owns (its processes' DATABASE_SCHEMA).
PAYMENTS_SCHEMA = "payments"
STOP_TIMEOUT = 15.0


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def default_nginx_user() -> str:
    """The user NGINX' workers run as when NGINX starts as root: Debian's web server user."""
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        return "nobody"
    return "www-data"


def runtime_base() -> Path:
    """Where runtime folders live: /run for root, the user's runtime folder, else /tmp."""
    if os.geteuid() == 0:
        return Path("/run/relais")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "relais"
    return Path(tempfile.gettempdir()) / f"relais-{os.geteuid()}"


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which ports and names it uses."""

    state_dir: Path = field(
        default_factory=lambda: Path(_env("RELAIS_STATE_DIR", str(ROOT / "var")))
    )
    core_instances: int = field(default_factory=lambda: int(_env("CORE_INSTANCES", "2")))
    core_base_port: int = field(default_factory=lambda: int(_env("CORE_BASE_PORT", "8001")))
    metrics_base_port: int = field(default_factory=lambda: int(_env("METRICS_BASE_PORT", "9101")))
    payments_instances: int = field(default_factory=lambda: int(_env("PAYMENTS_INSTANCES", "1")))
    payments_base_port: int = field(default_factory=lambda: int(_env("PAYMENTS_BASE_PORT", "8201")))
    payments_metrics_base_port: int = field(
        default_factory=lambda: int(_env("PAYMENTS_METRICS_BASE_PORT", "9201"))
    )
    nginx_port: int = field(default_factory=lambda: int(_env("NGINX_PORT", "8080")))
    nginx_tls_port: int = field(default_factory=lambda: int(_env("NGINX_TLS_PORT", "8443")))
    nginx_workers: str = field(default_factory=lambda: _env("NGINX_WORKERS", "auto"))
    # NGINX reaches co-located instances over Unix sockets (no TCP stack on that hop) or TCP.
    nginx_upstream: str = field(default_factory=lambda: _env("NGINX_UPSTREAM", "unix"))
    nginx_rate_limit: int = field(default_factory=lambda: int(_env("NGINX_RATE_LIMIT", "200")))
    nginx_rate_burst: int = field(default_factory=lambda: int(_env("NGINX_RATE_BURST", "400")))
    nginx_conn_limit: int = field(default_factory=lambda: int(_env("NGINX_CONN_LIMIT", "100")))
    # Browser origins allowed to call the API (CORS), comma-separated; none by default.
    cors_allowed_origins: str = field(default_factory=lambda: _env("CORS_ALLOWED_ORIGINS", ""))
    # Callers (CIDRs, comma-separated) whose trace context NGINX passes on; none by default.
    trusted_trace_callers: str = field(
        default_factory=lambda: _env("NGINX_TRUSTED_TRACE_CALLERS", "")
    )
    nginx_access_log: bool = field(default_factory=lambda: _env("NGINX_ACCESS_LOG", "on") == "on")
    # Started as root, NGINX runs its workers as this unprivileged user.
    nginx_user: str = field(default_factory=lambda: _env("NGINX_USER", default_nginx_user()))
    # Unix sockets and NGINX' temp files (default: a folder of /run or /tmp per state folder).
    runtime_root: str = field(default_factory=lambda: _env("RELAIS_RUNTIME_DIR", ""))
    postgres_admin_url: str = field(
        default_factory=lambda: _env(
            "POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    )
    database_name: str = field(default_factory=lambda: _env("DATABASE_NAME", "relais"))
    database_user: str = field(default_factory=lambda: _env("DATABASE_USER", "relais"))
    database_password: str = field(default_factory=lambda: _env("DATABASE_PASSWORD", "relais"))
    # The payments worker's own role: it may only append to the ledger.
    payments_database_user: str = field(
        default_factory=lambda: _env("PAYMENTS_DATABASE_USER", "relais_payments")
    )
    # The payments schema's owner (it runs the worker's migrations); core's role cannot touch it.
    payments_owner_user: str = field(
        default_factory=lambda: _env("PAYMENTS_OWNER_USER", "relais_payments_owner")
    )
    # The PostgreSQL exporter's role: pg_monitor, nothing else.
    monitor_database_user: str = field(
        default_factory=lambda: _env("MONITOR_DATABASE_USER", "relais_monitor")
    )
    database_host: str = field(default_factory=lambda: _env("DATABASE_HOST", "127.0.0.1:5432"))
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_key_prefix: str = field(default_factory=lambda: _env("REDIS_KEY_PREFIX", "relais:"))
    prometheus_port: int = field(default_factory=lambda: int(_env("PROMETHEUS_PORT", "9090")))
    alertmanager_port: int = field(default_factory=lambda: int(_env("ALERTMANAGER_PORT", "9093")))
    nginx_exporter_port: int = field(
        default_factory=lambda: int(_env("NGINX_EXPORTER_PORT", "9113"))
    )
    postgres_exporter_port: int = field(
        default_factory=lambda: int(_env("POSTGRES_EXPORTER_PORT", "9187"))
    )
    redis_exporter_port: int = field(
        default_factory=lambda: int(_env("REDIS_EXPORTER_PORT", "9121"))
    )
    scrape_interval: str = field(default_factory=lambda: _env("PROMETHEUS_SCRAPE_INTERVAL", "15s"))
    rabbitmq_host: str = field(default_factory=lambda: _env("RABBITMQ_HOST", "127.0.0.1:5672"))
    rabbitmq_vhost: str = field(default_factory=lambda: _env("RABBITMQ_VHOST", "relais"))
    # The operator's user (`make dlq`); each service has its own, allowed only what it does.
    rabbitmq_user: str = field(default_factory=lambda: _env("RABBITMQ_USER", "relais"))
    rabbitmq_password: str = field(default_factory=lambda: _env("RABBITMQ_PASSWORD", "relais"))
    rabbitmq_core_user: str = field(
        default_factory=lambda: _env("RABBITMQ_CORE_USER", "relais_core")
    )
    rabbitmq_payments_user: str = field(
        default_factory=lambda: _env("RABBITMQ_PAYMENTS_USER", "relais_payments")
    )
    # Where traces go: Jaeger's OTLP/HTTP port (the compose stack publishes it on 4318).
    otlp_endpoint: str = field(
        default_factory=lambda: _env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    )

    @property
    def database_url(self) -> str:
        """The DSN core uses (the stack's own role)."""
        return self.database_url_of(self.database_user)

    @property
    def payments_database_url(self) -> str:
        """The DSN of the payments worker's role."""
        return self.database_url_of(self.payments_database_user)

    @property
    def admin_database_url(self) -> str:
        """The administrator's DSN on the stack's database."""
        return self.postgres_admin_url.rsplit("/", 1)[0] + f"/{self.database_name}"

    def database_url_of(self, role: str) -> str:
        """The DSN of one of the stack's roles."""
        return (
            f"postgresql://{role}:{self.database_password}@{self.database_host}/"
            f"{self.database_name}"
        )

    @property
    def amqp_url(self) -> str:
        """The operator's broker URL (the stack's own vhost)."""
        return self.amqp_url_of(self.rabbitmq_user)

    def amqp_url_of(self, user: str) -> str:
        """The broker URL of one of the stack's users."""
        return f"amqp://{user}:{self.rabbitmq_password}@{self.rabbitmq_host}/{self.rabbitmq_vhost}"

    def broker_users(self) -> dict[str, BrokerPermissions]:
        """Each service's broker user and what it may do (as the service itself says)."""
        return {
            self.rabbitmq_core_user: broker_permissions("services.core"),
            self.rabbitmq_payments_user: broker_permissions("services.payments"),
        }

    @property
    def run_dir(self) -> Path:
        """PID files and NGINX' rendered config and temp files."""
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        """One log file per process."""
        return self.state_dir / "log"

    @property
    def key_dir(self) -> Path:
        """The generated development JWT key pair and TLS certificate."""
        return self.state_dir / "keys"

    @property
    def runtime_dir(self) -> Path:
        """The instances' Unix sockets and NGINX' temp files: a short path outside the state
        folder, so NGINX' workers (another user under root) reach them whatever the mode of the
        folder the stack lives in (a home folder is often 0700), and a socket's path stays
        within the kernel's 108 bytes."""
        if self.runtime_root:
            return Path(self.runtime_root)
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        return runtime_base() / digest

    def unix_socket(self, name: str) -> Path:
        """Where the process `name` listens for NGINX when upstreams are Unix sockets."""
        return self.runtime_dir / f"{name}.sock"

    def upstream(self, name: str, port: int) -> str:
        """NGINX' address for the process `name`, which also serves TCP on `port`."""
        if self.nginx_upstream == "unix":
            return f"unix:{self.unix_socket(name)}"
        return f"127.0.0.1:{port}"

    def core_upstreams(self) -> list[str]:
        """NGINX' address of every core instance."""
        return [
            self.upstream(f"core-{i}", port) for i, (port, _) in enumerate(self.core_ports(), 1)
        ]

    def core_ports(self) -> list[tuple[int, int]]:
        """(HTTP port, metrics port) of each core instance."""
        return [
            (self.core_base_port + i, self.metrics_base_port + i)
            for i in range(self.core_instances)
        ]

    def payments_ports(self) -> list[tuple[int, int]]:
        """(HTTP port, metrics port) of each payments worker."""
        return [
            (self.payments_base_port + i, self.payments_metrics_base_port + i)
            for i in range(self.payments_instances)
        ]

    def processes(self) -> list[tuple[str, str, int, int]]:
        """(name, module, HTTP port, metrics port) of every service process."""
        return [
            (f"core-{i}", "services.core", port, metrics)
            for i, (port, metrics) in enumerate(self.core_ports(), 1)
        ] + [
            (f"payments-{i}", "services.payments", port, metrics)
            for i, (port, metrics) in enumerate(self.payments_ports(), 1)
        ]


# --- development secrets ------------------------------------------------------------------------


def ensure_keys(config: StackConfig) -> None:
    """Generate the development JWT key pair, webhook secret and TLS certificate once, marked
    as development secrets (refused with RELAIS_ENV=production)."""
    config.key_dir.mkdir(parents=True, exist_ok=True)
    marker = config.key_dir / DEV_MARKER
    if not marker.exists():
        marker.write_text(
            "Secrets generated by `make up` for development: never use them in production.\n"
        )
    webhook_secret = config.key_dir / "webhook-secret"
    if not webhook_secret.exists():
        _write_secret(webhook_secret, f"whsec_{secrets.token_urlsafe(32)}\n".encode())
    private_path, public_path = (
        config.key_dir / "jwt-private.pem",
        config.key_dir / "jwt-public.pem",
    )
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        _write_secret(
            private_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    cert_path, cert_key_path = config.key_dir / "tls.crt", config.key_dir / "tls.key"
    if not cert_path.exists():
        tls_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(tls_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .sign(tls_key, hashes.SHA256())
        )
        _write_secret(
            cert_key_path,
            tls_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# --- database -----------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def ensure_database(config: StackConfig) -> None:
    """Create the stack's roles and database if they do not exist: core's role owns the
    database and the core schema, the payments owner the payments schema, the worker's role
    gets grants, the monitoring role pg_monitor."""
    roles = (
        config.database_user,
        config.payments_owner_user,
        config.payments_database_user,
        config.monitor_database_user,
    )
    for name in (*roles, config.database_name):
        if not _IDENTIFIER.match(name):
            raise SystemExit(f"not a safe PostgreSQL identifier: {name!r}")
    conn = await asyncpg.connect(config.postgres_admin_url)
    try:
        password = config.database_password.replace("'", "''")
        for role in roles:
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(f"GRANT pg_monitor TO {config.monitor_database_user}")
        if not await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", config.database_name
        ):
            await conn.execute(
                f"CREATE DATABASE {config.database_name} OWNER {config.database_user}"
            )
        await conn.execute(
            f"GRANT CONNECT, CREATE ON DATABASE {config.database_name} "
            f"TO {config.payments_owner_user}"
        )
    finally:
        await conn.close()
    await hand_payments_to_its_owner(config)


async def hand_payments_to_its_owner(config: StackConfig) -> None:
    """Give the payments schema and everything in it to its own owner (a stack made before
    that role existed had them owned by core's role)."""
    conn = await asyncpg.connect(config.admin_database_url)
    owner = config.payments_owner_user
    try:
        if not await conn.fetchval(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1", PAYMENTS_SCHEMA
        ):
            return
        objects = await conn.fetch(
            """SELECT format('ALTER %s %s OWNER TO %I', kind, name, $2::text) AS statement
               FROM (SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
                            c.oid::regclass::text AS name, c.relowner AS owner
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- a serial's own sequence
                                       WHERE d.objid = c.oid AND d.deptype = 'a'
                                         AND c.relkind = 'S')
                     UNION ALL
                     SELECT 'FUNCTION', p.oid::regprocedure::text, p.proowner
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = $1) AS o
               WHERE owner <> (SELECT oid FROM pg_roles WHERE rolname = $2)""",
            PAYMENTS_SCHEMA,
            owner,
        )
        async with conn.transaction():
            await conn.execute(f"ALTER SCHEMA {PAYMENTS_SCHEMA} OWNER TO {owner}")
            for row in objects:
                await conn.execute(row["statement"])
            await conn.execute(
                f"REVOKE ALL ON SCHEMA {PAYMENTS_SCHEMA} FROM {config.database_user}"
            )
    finally:
        await conn.close()


def migrate(config: StackConfig) -> None:
    """Bring every service's schema up to date, each as its schema's owner (the service's own
    `migrate` command), then give the worker's role its grants."""
    env = service_env(config, "core-1", 0, 0, traced=False)
    run_service_command("services.core", ["migrate"], env)
    owner = {
        **service_env(config, "payments-1", 0, 0, traced=False),
        "DATABASE_URL": config.database_url_of(config.payments_owner_user),
    }
    run_service_command(
        "services.payments", ["migrate", "--grant", config.payments_database_user], owner
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


async def drop_database(config: StackConfig) -> None:
    """Drop the stack's database and then its roles but core's (for throwaway stacks in tests
    and benchmarks; the roles must not be shared with another stack)."""
    conn = await asyncpg.connect(config.postgres_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{config.database_name}" WITH (FORCE)')
        for role in (
            config.payments_database_user,
            config.payments_owner_user,
            config.monitor_database_user,
        ):
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


# --- broker -------------------------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    """Run a RabbitMQ admin command on the local node; its output."""
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def ensure_broker(config: StackConfig) -> None:
    """Create the stack's vhost and users on the local RabbitMQ if they do not exist: the
    operator's, with every permission, and each service's, with only its own."""
    if shutil.which("rabbitmqctl") is None:
        print("rabbitmqctl not found: create the vhost and users named by RABBITMQ_* yourself")
        return
    vhost = config.rabbitmq_vhost
    if vhost not in rabbitmqctl("list_vhosts", "--no-table-headers").split():
        rabbitmqctl("add_vhost", vhost)
    users = [
        line.split()[0]
        for line in rabbitmqctl("list_users", "--no-table-headers").splitlines()
        if line.strip()
    ]
    for user in (config.rabbitmq_user, *config.broker_users()):
        if user not in users:
            rabbitmqctl("add_user", user, config.rabbitmq_password)
    rabbitmqctl("set_permissions", "-p", vhost, config.rabbitmq_user, ".*", ".*", ".*")
    for user, permissions in config.broker_users().items():
        grant_broker_permissions(vhost, user, permissions)


def grant_broker_permissions(vhost: str, user: str, permissions: BrokerPermissions) -> None:
    """Give `user` exactly `permissions` in `vhost`."""
    rabbitmqctl(
        "set_permissions",
        "-p",
        vhost,
        user,
        permissions.configure,
        permissions.write,
        permissions.read,
    )
    for exchange, (write, read) in permissions.topics.items():
        rabbitmqctl("set_topic_permissions", "-p", vhost, user, exchange, write, read)


def enable_broker_metrics() -> None:
    """Turn on RabbitMQ's built-in Prometheus endpoint (port 15692) on the local node."""
    if shutil.which("rabbitmq-plugins") is None:
        return
    subprocess.run(
        ["rabbitmq-plugins", "-q", "enable", "rabbitmq_prometheus"],
        check=False,
        capture_output=True,
        timeout=120,
    )


def drop_broker(config: StackConfig) -> None:
    """Delete the stack's vhost and its services' users (for throwaway stacks in tests and
    benchmarks; the users must not be shared with another stack)."""
    with contextlib.suppress(subprocess.CalledProcessError):
        rabbitmqctl("delete_vhost", config.rabbitmq_vhost)
    for user in config.broker_users():
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_user", user)


# --- processes ----------------------------------------------------------------------------------


def prepare_dirs(config: StackConfig) -> None:
    """Create the state folders (private to their owner) and the runtime folder."""
    for directory in (config.state_dir, config.run_dir, config.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    prepare_runtime_dir(config)


def nginx_group(config: StackConfig) -> int:
    """The group NGINX' workers run in: the worker user's under root, else our own."""
    if os.geteuid() != 0:
        return os.getegid()
    return pwd.getpwnam(config.nginx_user).pw_gid


def prepare_runtime_dir(config: StackConfig) -> Path:
    """Create the runtime folder: its owner and NGINX' worker group may enter it, nobody else
    (sockets made in it inherit that group, setgid, and are 0660)."""
    runtime = config.runtime_dir
    runtime.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    for folder in (runtime.parent, runtime):
        info = folder.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            raise SystemExit(f"{folder} is not a folder of this user's: refusing to use it")
    os.chown(runtime, -1, nginx_group(config))
    runtime.chmod(0o2750)
    return runtime


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def tracing_enabled(config: StackConfig) -> bool:
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


def service_env(
    config: StackConfig, name: str, port: int, metrics_port: int, *, traced: bool
) -> dict[str, str]:
    """The environment of one service process (`traced`: exporting spans)."""
    env = dict(os.environ)
    worker = name.startswith("payments")
    env.update(
        {
            "SERVICE_NAME": name.rsplit("-", 1)[0],
            "HTTP_PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "DATABASE_URL": config.payments_database_url if worker else config.database_url,
            "DATABASE_SCHEMA": PAYMENTS_SCHEMA if worker else "core",
            "AMQP_URL": config.amqp_url_of(
                config.rabbitmq_payments_user if worker else config.rabbitmq_core_user
            ),
            "REDIS_URL": config.redis_url,
            "REDIS_KEY_PREFIX": config.redis_key_prefix,
            "JWT_PRIVATE_KEY_FILE": str(config.key_dir / "jwt-private.pem"),
            "JWT_PUBLIC_KEY_FILE": str(config.key_dir / "jwt-public.pem"),
            "PAYMENTS_WEBHOOK_SECRET_FILE": str(config.key_dir / "webhook-secret"),
            "PYTHONUNBUFFERED": "1",
            "OTEL_SERVICE_NAME": name.rsplit("-", 1)[0],
            "OTEL_EXPORTER_OTLP_ENDPOINT": config.otlp_endpoint,
            "OTEL_SDK_DISABLED": str(not traced).lower(),
        }
    )
    env.pop("HTTP_UNIX_SOCKET", None)
    if config.nginx_upstream == "unix" and not worker:
        env["HTTP_UNIX_SOCKET"] = str(config.unix_socket(name))
    return env


def check_settings(config: StackConfig, *, traced: bool) -> None:
    """Refuse at once what a service would refuse at its start (RELAIS_ENV=production with the
    development secrets, say), with its reason, rather than report a process that died."""
    checked = set()
    for name, module, port, metrics_port in config.processes():
        if module in checked:
            continue
        checked.add(module)
        env = service_env(config, name, port, metrics_port, traced=traced)
        run_service_command(module, ["check"], env)


def start_process(name: str, argv: list[str], env: dict[str, str], config: StackConfig) -> bool:
    """Start a background process unless its PID file names a live one; True if started."""
    pid_file = config.run_dir / f"{name}.pid"
    if _pid(pid_file):
        return False
    log = open(config.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    pid_file.write_text(f"{process.pid}\n")
    return True


def render_nginx(config: StackConfig, upstreams: list[str]) -> Path:
    """Write NGINX' config for this stack (upstreams: `host:port` or `unix:/path`)."""
    servers = "\n".join(
        f"        server {address} max_fails=3 fail_timeout=10s;" for address in upstreams
    )
    group = grp.getgrgid(nginx_group(config)).gr_name
    values = {
        # Only a master running as root can switch its workers to another user.
        "USER": f"user {config.nginx_user} {group};" if os.geteuid() == 0 else "",
        "WORKERS": config.nginx_workers,
        "RUN_DIR": str(config.run_dir / "nginx"),
        "RUNTIME_DIR": str(prepare_runtime_dir(config)),
        "LOG_DIR": str(config.log_dir),
        "ACCESS_LOG": f"{config.log_dir / 'nginx-access.log'} relais_json"
        if config.nginx_access_log
        else "off",
        "HTTP_PORT": str(config.nginx_port),
        "TLS_PORT": str(config.nginx_tls_port),
        "TLS_CERT": str(config.key_dir / "tls.crt"),
        "TLS_KEY": str(config.key_dir / "tls.key"),
        "RATE_LIMIT": str(config.nginx_rate_limit),
        "RATE_BURST": str(config.nginx_rate_burst),
        "CONN_LIMIT": str(config.nginx_conn_limit),
        "CORE_SERVERS": servers,
        "CONF_DIR": str(TEMPLATE.parent),
        "CORS_ORIGINS": "\n".join(
            f'        "{origin}" $http_origin;' for origin in cors_origins(config)
        ),
        "TRACE_TRUSTED_CALLERS": "\n".join(
            f"        {network} 1;" for network in trusted_trace_networks(config)
        ),
    }
    text = re.sub(r"{{ (\w+) }}", lambda m: values[m.group(1)], TEMPLATE.read_text())
    (config.run_dir / "nginx").mkdir(parents=True, exist_ok=True)
    path = config.run_dir / "nginx" / "nginx.conf"
    path.write_text(text)
    return path


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def cors_origins(config: StackConfig) -> list[str]:
    """The browser origins CORS admits, each `scheme://host[:port]` exactly."""
    origins = [origin.strip() for origin in config.cors_allowed_origins.split(",")]
    for origin in filter(None, origins):
        if not _ORIGIN.fullmatch(origin):
            raise SystemExit(f"CORS_ALLOWED_ORIGINS: {origin!r} is not scheme://host[:port]")
    return [origin for origin in origins if origin]


def trusted_trace_networks(config: StackConfig) -> list[str]:
    """The networks whose callers keep their trace context, normalized."""
    networks = filter(None, (text.strip() for text in config.trusted_trace_callers.split(",")))
    try:
        return [str(ipaddress.ip_network(network, strict=False)) for network in networks]
    except ValueError as exc:
        raise SystemExit(f"NGINX_TRUSTED_TRACE_CALLERS: {exc}") from exc


def render_prometheus(config: StackConfig) -> Path:
    """Write Prometheus' config for this stack: every process's metrics port, the rules, the
    Alertmanager; the checked-in `infra/prometheus/prometheus.yml` is the default-ports copy."""
    base = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    base["global"]["scrape_interval"] = config.scrape_interval
    base["global"]["evaluation_interval"] = config.scrape_interval
    base["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
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
        if job["job_name"] in ports:
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{ports[job['job_name']]}"]
    path = config.run_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def nginx_status_socket(config: StackConfig) -> Path:
    """NGINX' `stub_status`, on a Unix socket no client can reach."""
    return config.runtime_dir / "nginx-status.sock"


def exporter_ports(config: StackConfig) -> dict[str, int]:
    """The port of each exporter `make up` runs, by the Prometheus job that scrapes it."""
    return {
        "nginx": config.nginx_exporter_port,
        "postgres": config.postgres_exporter_port,
        "redis": config.redis_exporter_port,
    }


def start_exporters(config: StackConfig) -> None:
    """Start the NGINX, PostgreSQL and Redis exporters (Debian packages `make up` installs)."""
    ports = exporter_ports(config)
    commands = {
        "nginx-exporter": [
            "prometheus-nginx-exporter",
            f"-nginx.scrape-uri=unix:{nginx_status_socket(config)}:/stub_status",
            f"-web.listen-address=127.0.0.1:{ports['nginx']}",
        ],
        "postgres-exporter": [
            "prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{ports['postgres']}",
        ],
        "redis-exporter": [
            "prometheus-redis-exporter",
            f"-redis.addr={config.redis_url}",
            f"-web.listen-address=127.0.0.1:{ports['redis']}",
        ],
    }
    # Its own role, with pg_monitor and nothing else.
    dsn = config.database_url_of(config.monitor_database_user) + "?sslmode=disable"
    for name, argv in commands.items():
        binary = shutil.which(argv[0])
        if binary is None:
            print(f"{argv[0]} is not installed: `make up` installs it")
            continue
        env = {**os.environ, "DATA_SOURCE_NAME": dsn} if name == "postgres-exporter" else None
        start_process(name, [binary, *argv[1:]], env or dict(os.environ), config)


def start_observability(config: StackConfig) -> None:
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
        "alertmanager",
        [
            alertmanager,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={data / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{config.alertmanager_port}",
            "--cluster.listen-address=",
        ],
        dict(os.environ),
        config,
    )


def nginx_binary() -> str:
    """The nginx executable (installed by `make up` when missing)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit("nginx is not installed: run `make up`, which installs it")
    return found


def start_nginx(config: StackConfig, upstreams: list[str]) -> None:
    """Start NGINX, or reload it with a freshly rendered config if it runs."""
    conf = render_nginx(config, upstreams)
    prefix = str(config.run_dir / "nginx")
    base = [
        nginx_binary(),
        "-p",
        prefix,
        "-c",
        str(conf),
        "-e",
        str(config.log_dir / "nginx-error.log"),
    ]
    subprocess.run([*base, "-t", "-q"], check=True)
    if _pid(config.run_dir / "nginx" / "nginx.pid"):
        subprocess.run([*base, "-s", "reload"], check=True)
    else:
        subprocess.run(base, check=True)


def stop_pid_file(pid_file: Path, sig: signal.Signals = signal.SIGTERM) -> str | None:
    """Signal the process a PID file names and wait for it to exit; its name if one ran."""
    pid = _pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return None
    os.kill(pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _pid(pid_file):
        time.sleep(0.1)
    if _pid(pid_file):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid_file.stem


# --- readiness ----------------------------------------------------------------------------------


def http_status(url: str) -> int | None:
    """The status of a GET, or None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URLs only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def api_probe_url(config: StackConfig) -> str:
    """A real API request through NGINX: the last proof that the stack serves."""
    return f"http://127.0.0.1:{config.nginx_port}/api/products?limit=1"


def readiness(config: StackConfig) -> dict[str, int | None]:
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
    # Last, once everything behind it is ready: NGINX counts a refused connection against the
    # instance, and a probe before the instances listen would take them out of rotation.
    ready = all(status == 200 for status in checks.values())
    checks[api_probe_url(config)] = http_status(api_probe_url(config)) if ready else None
    return checks


def report(config: StackConfig, checks: dict[str, int | None]) -> bool:
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


def wait_ready(config: StackConfig, timeout: float = READY_TIMEOUT) -> None:
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


# --- commands -----------------------------------------------------------------------------------


def up(config: StackConfig) -> None:
    """Bring the whole native stack up (idempotent)."""
    prepare_dirs(config)
    ensure_keys(config)
    asyncio.run(ensure_database(config))
    migrate(config)
    ensure_broker(config)
    enable_broker_metrics()
    traced = tracing_enabled(config)  # one answer for every process
    check_settings(config, traced=traced)
    for name, module, port, metrics_port in config.processes():
        start_process(
            name,
            [sys.executable, "-m", module],
            service_env(config, name, port, metrics_port, traced=traced),
            config,
        )
    start_nginx(config, config.core_upstreams())
    start_observability(config)
    start_exporters(config)
    wait_ready(config)
    print(
        f"Relais is up ({config.core_instances} core instances, "
        f"{config.payments_instances} payments worker)"
    )
    print(
        f"  API        http://127.0.0.1:{config.nginx_port}/api/   https://127.0.0.1:{config.nginx_tls_port}/api/"
    )
    print(f"  API docs   http://127.0.0.1:{config.nginx_port}/api/docs")
    for name, _, port, metrics_port in config.processes():
        print(
            f"  {name:<10} http://127.0.0.1:{port}/health/ready   "
            f"metrics http://127.0.0.1:{metrics_port}/metrics"
        )
    print(f"  RabbitMQ   amqp://{config.rabbitmq_host}/{config.rabbitmq_vhost}  (make dlq)")
    print(f"  Prometheus http://127.0.0.1:{config.prometheus_port}/   (rules and alerts loaded)")
    print(f"  Alertmanager http://127.0.0.1:{config.alertmanager_port}/")
    traces = (
        f"exported to {config.otlp_endpoint}"
        if traced
        else f"off: nothing listens at {config.otlp_endpoint} (start Jaeger, then `make down up`)"
    )
    print(f"  Traces     {traces}")
    print("  Grafana and Jaeger are not installable here: they run in the compose stack")
    print(f"  logs       {config.log_dir}  (make logs)")


def down(config: StackConfig) -> None:
    """Stop everything `up` started."""
    stopped = []
    nginx_pid = config.run_dir / "nginx" / "nginx.pid"
    if stop_pid_file(nginx_pid, signal.SIGQUIT):
        stopped.append("nginx")
    for pid_file in sorted(config.run_dir.glob("*.pid")) if config.run_dir.exists() else []:
        if name := stop_pid_file(pid_file):
            stopped.append(name)
    if not config.runtime_root:  # a folder of our own making: its sockets are dead now
        shutil.rmtree(config.runtime_dir, ignore_errors=True)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def status(config: StackConfig) -> bool:
    """Print each component's process and readiness; True if all are up."""
    healthy = True
    pid_files = [config.run_dir / "nginx" / "nginx.pid"] + [
        config.run_dir / f"{name}.pid" for name, *_ in config.processes()
    ]
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        pid_files += [config.run_dir / "prometheus.pid", config.run_dir / "alertmanager.pid"]
    for pid_file in pid_files:
        pid = _pid(pid_file)
        healthy &= pid is not None
        state = f"running pid {pid}" if pid else "stopped"
        print(f"{pid_file.stem:<10} {state}")
    return report(config, readiness(config)) and healthy


def follow_logs(config: StackConfig) -> None:
    """Follow every log file until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(["tail", "-n", "20", "-F", *map(str, sorted(config.log_dir.glob("*.log")))])


def show_logs(config: StackConfig, lines: int = 50) -> None:
    """Print the last lines of every log file."""
    for path in sorted(config.log_dir.glob("*.log")) if config.log_dir.exists() else []:
        print(f"==> {path} <==")
        print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


def admin(config: StackConfig, email: str, *, promote: bool) -> int:
    """Create an admin in the stack's database, or promote an existing account (`promote`);
    the password comes from ADMIN_PASSWORD."""
    env = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "REDIS_KEY_PREFIX": config.redis_key_prefix,
    }
    argv = [sys.executable, "-m", "services.core.admin", "--email", email]
    return subprocess.run([*argv, "--promote"] if promote else argv, env=env).returncode


def main() -> None:
    """Dispatch a stack command."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "logs", "admin"])
    parser.add_argument("--email", help="the account `admin` creates or promotes")
    parser.add_argument("--promote", action="store_true", help="`admin`: promote a customer")
    parser.add_argument("--lines", type=int, default=50, help="lines per file for `logs`")
    parser.add_argument("--follow", action="store_true", help="`logs`: keep following")
    args = parser.parse_args()
    config = StackConfig()
    if args.command == "up":
        up(config)
    elif args.command == "down":
        down(config)
    elif args.command == "admin":
        sys.exit(admin(config, args.email, promote=args.promote))
    elif args.command == "status":
        sys.exit(0 if status(config) else 1)
    elif args.follow:
        follow_logs(config)
    else:
        show_logs(config, args.lines)


if __name__ == "__main__":
    main()
