"""The dev stack's settings: every path, port and name, from the environment."""

from __future__ import annotations

import hashlib
import os
import pwd
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chassis.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
# The per-address limits under LOADTEST_LIMITS (load tests, the benchmark): NGINX's rate, burst
# and connections, and the services' writes.
LOAD_TEST_EDGE_LIMITS = (10_000_000, 10_000_000, 60_000)
LOAD_TEST_WRITE_LIMIT = "100000000/minute"


TEMPLATE = ROOT / "infra" / "nginx" / "relais.conf.template"


PROMETHEUS_DIR = ROOT / "infra" / "prometheus"


ALERTMANAGER_CONFIG = ROOT / "infra" / "alertmanager" / "alertmanager.yml"


READY_TIMEOUT = 60.0


# The schema the payments service owns (its processes' DATABASE_SCHEMA).
PAYMENTS_SCHEMA = "payments"
# The schema the AI worker owns (its index and recommendations), as its own role.
AI_SCHEMA = "ai"


STOP_TIMEOUT = 15.0


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


# The services' own defaults, where the stack and a service share a setting.
_SERVICE = ServiceSettings.model_fields


class StackSettings(BaseSettings):
    """Where the stack keeps its state and which ports and names it uses (each field from the
    environment variable of its name in capitals unless it names another)."""

    # An empty variable means "unset", as in the services' settings.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, env_ignore_empty=True, populate_by_name=True
    )

    state_dir: Path = Field(ROOT / "var", validation_alias="RELAIS_STATE_DIR")
    core_instances: int = Field(2, ge=0)
    core_base_port: int = _SERVICE["http_port"].default
    metrics_base_port: int = _SERVICE["metrics_port"].default
    payments_instances: int = Field(1, ge=0)
    # The payments service's own defaults (the dev stack does not import a service).
    payments_base_port: int = 8201
    payments_metrics_base_port: int = 9201
    ai_instances: int = Field(1, ge=0)
    ai_base_port: int = 8301
    ai_metrics_base_port: int = 9301
    # The realtime gateway's instances (NGINX' `/ws`).
    gateway_instances: int = Field(2, ge=0)
    gateway_base_port: int = 8401
    gateway_metrics_base_port: int = 9401
    nginx_port: int = 8080
    nginx_tls_port: int = 8443
    nginx_workers: str = "auto"
    # NGINX reaches co-located instances over Unix sockets (no TCP stack on that hop) or TCP.
    nginx_upstream: Literal["unix", "tcp"] = "unix"
    nginx_rate_limit: int = 200
    nginx_rate_burst: int = 400
    nginx_conn_limit: int = 100
    # `LOADTEST_LIMITS=1 make restart`: a load test's requests all come from one address, so the
    # per-address limits (NGINX's rate and connections, the services' writes) are lifted.
    load_test_limits: bool = Field(False, validation_alias="LOADTEST_LIMITS")
    # Browser origins allowed to call the API (CORS), comma-separated; none by default.
    cors_allowed_origins: str = ""
    # Callers (CIDRs, comma-separated) whose trace context NGINX passes on; none by default.
    trusted_trace_callers: str = Field("", validation_alias="NGINX_TRUSTED_TRACE_CALLERS")
    nginx_access_log: bool = True
    # Started as root, NGINX runs its workers as this unprivileged user.
    nginx_user: str = Field(default_factory=default_nginx_user)
    # Unix sockets and NGINX' temp files (default: a folder of /run or /tmp per state folder).
    runtime_root: str = Field("", validation_alias="RELAIS_RUNTIME_DIR")
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database_name: str = "relais"
    database_user: str = "relais"
    database_password: str = "relais"  # noqa: S105 - a development default
    # The payments worker's own role: it may only append to the ledger.
    payments_database_user: str = "relais_payments"
    # The payments schema's owner (it runs the worker's migrations); core's role cannot touch it.
    payments_owner_user: str = "relais_payments_owner"
    # The AI worker's role: owns the ai schema, reads core's products.
    ai_database_user: str = "relais_ai"
    # The PostgreSQL exporter's role: pg_monitor, nothing else.
    monitor_database_user: str = "relais_monitor"
    database_host: str = "127.0.0.1:5432"
    # pgBackRest's repository on this machine (base backups, archived WAL) and, under `dumps/`,
    # the logical dumps; how many full backups (and their WAL) it keeps.
    backup_repo: Path = Field(Path("/var/lib/pgbackrest"), validation_alias="BACKUP_REPO")
    backup_retention: int = Field(3, ge=1, validation_alias="BACKUP_RETENTION")
    # `REPLICA=1 make up`: a streaming replica of the stack's PostgreSQL on this port, which the
    # reads that tolerate lag (the catalog list, the daily report) use.
    replica: bool = Field(False, validation_alias="REPLICA")
    replica_port: int = 5433
    # The data safety exporter: backups' age, WAL archiving, the replica's lag.
    backup_exporter_port: int = 9188
    redis_url: str = _SERVICE["redis_url"].default
    redis_key_prefix: str = _SERVICE["redis_key_prefix"].default
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    # The local receiver Alertmanager posts pages and tickets to (`make alerts` reads it).
    alert_receiver_port: int = 9095
    # Every route's wait before its first notification (default: the checked-in file's, 30 s
    # for pages, 5 min for tickets).
    alert_group_wait: str = Field("", validation_alias="ALERTMANAGER_GROUP_WAIT")
    # Where alerts' `runbook_url` points (default: the runbooks NGINX serves under /docs/).
    runbook_base_url: str = Field("", validation_alias="RUNBOOK_BASE_URL")
    nginx_exporter_port: int = 9113
    postgres_exporter_port: int = 9187
    redis_exporter_port: int = 9121
    process_exporter_port: int = 9256
    scrape_interval: str = Field("15s", validation_alias="PROMETHEUS_SCRAPE_INTERVAL")
    # A game day's clock: every rule window, `for:` and Alertmanager timer divided by it (60: an
    # hour's window lasts a minute), the rules otherwise as they ship. 1 everywhere else.
    alert_time_scale: int = Field(1, ge=1, le=3600, validation_alias="ALERT_TIME_SCALE")
    rabbitmq_host: str = "127.0.0.1:5672"
    rabbitmq_vhost: str = "relais"
    # The operator's user (`make dlq`); each service has its own, allowed only what it does.
    rabbitmq_user: str = "relais"
    rabbitmq_password: str = "relais"  # noqa: S105 - a development default
    rabbitmq_core_user: str = "relais_core"
    rabbitmq_payments_user: str = "relais_payments"
    rabbitmq_ai_user: str = "relais_ai"
    rabbitmq_gateway_user: str = "relais_gateway"
    # Where traces go: Jaeger's OTLP/HTTP port (the compose stack publishes it on 4318).
    otlp_endpoint: str = Field(
        _SERVICE["otel_exporter_otlp_endpoint"].default,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
    )

    @property
    def public_url(self) -> str:
        """The API's address as its clients see it (NGINX)."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def runbooks_url(self) -> str:
        """The runbooks' base URL, ending in a slash."""
        return (self.runbook_base_url or f"{self.public_url}/docs/runbooks").rstrip("/") + "/"

    @property
    def saved_path(self) -> Path:
        """The configuration a running stack was started with."""
        return self.run_dir / "stack.json"

    def save(self) -> None:
        """Keep this configuration as the running stack's."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.saved_path.write_text(self.model_dump_json(indent=1))

    def saved(self) -> StackSettings | None:
        """The configuration the stack in this state folder was started with, if it runs."""
        try:
            return StackSettings.model_validate_json(self.saved_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def changes_from(self, other: StackSettings) -> list[str]:
        """The settings that differ between this configuration and `other`."""
        mine, theirs = self.model_dump(), other.model_dump()
        return sorted(name for name in mine if mine[name] != theirs.get(name))

    def database_roles(self) -> dict[str, str]:
        """Each PostgreSQL role of the stack, by what it is for."""
        return {
            "core": self.database_user,
            "payments_owner": self.payments_owner_user,
            "payments": self.payments_database_user,
            "ai": self.ai_database_user,
            "monitor": self.monitor_database_user,
        }

    def broker_accounts(self) -> dict[str, str]:
        """Each RabbitMQ user of the stack, by what it is for."""
        return {
            "operator": self.rabbitmq_user,
            "core": self.rabbitmq_core_user,
            "payments": self.rabbitmq_payments_user,
            "ai": self.rabbitmq_ai_user,
            "gateway": self.rabbitmq_gateway_user,
        }

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

    def database_url_of(self, role: str, host: str | None = None) -> str:
        """The DSN of one of the stack's roles (on `host`, else `database_host`). The host
        may list a primary and its standbys (`h1:p1,h2:p2`): each connection then goes to the
        one that takes writes, so after a failover the services follow the promoted standby."""
        host = host or self.database_host
        failover = "?target_session_attrs=read-write" if "," in host else ""
        return f"postgresql://{role}:{self.database_password}@{host}/{self.database_name}{failover}"

    @property
    def replica_host(self) -> str:
        """The replica's address (`database_host`'s host, `replica_port`)."""
        return f"{self.database_host.split(',')[0].rsplit(':', 1)[0]}:{self.replica_port}"

    def replica_url_of(self, role: str) -> str:
        """The DSN of one of the stack's roles on the replica."""
        return self.database_url_of(role, self.replica_host)

    @property
    def amqp_url(self) -> str:
        """The operator's broker URL (the stack's own vhost)."""
        return self.amqp_url_of(self.rabbitmq_user)

    def amqp_url_of(self, user: str) -> str:
        """The broker URL of one of the stack's users."""
        return f"amqp://{user}:{self.rabbitmq_password}@{self.rabbitmq_host}/{self.rabbitmq_vhost}"

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

    def payments_upstreams(self) -> list[str]:
        """NGINX' address of every payments instance (it takes the providers' webhooks)."""
        return [
            self.upstream(f"payments-{i}", port)
            for i, (port, _) in enumerate(self.payments_ports(), 1)
        ]

    def gateway_upstreams(self) -> list[str]:
        """NGINX' address of every gateway instance (the WebSockets of `/ws`)."""
        return [
            self.upstream(f"gateway-{i}", port)
            for i, (port, _) in enumerate(self.gateway_ports(), 1)
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

    def ai_ports(self) -> list[tuple[int, int]]:
        """(HTTP port, metrics port) of each AI worker."""
        return [
            (self.ai_base_port + i, self.ai_metrics_base_port + i) for i in range(self.ai_instances)
        ]

    def gateway_ports(self) -> list[tuple[int, int]]:
        """(HTTP port, metrics port) of each gateway instance."""
        return [
            (self.gateway_base_port + i, self.gateway_metrics_base_port + i)
            for i in range(self.gateway_instances)
        ]

    def edge_limits(self) -> tuple[int, int, int]:
        """NGINX's per-address request rate (per second), burst and connections."""
        if self.load_test_limits:
            return LOAD_TEST_EDGE_LIMITS
        return self.nginx_rate_limit, self.nginx_rate_burst, self.nginx_conn_limit

    def processes(self) -> list[tuple[str, str, int, int]]:
        """(name, module, HTTP port, metrics port) of every service process."""
        return (
            [
                (f"core-{i}", "services.core", port, metrics)
                for i, (port, metrics) in enumerate(self.core_ports(), 1)
            ]
            + [
                (f"payments-{i}", "services.payments", port, metrics)
                for i, (port, metrics) in enumerate(self.payments_ports(), 1)
            ]
            + [
                (f"ai-{i}", "services.ai", port, metrics)
                for i, (port, metrics) in enumerate(self.ai_ports(), 1)
            ]
            + [
                (f"gateway-{i}", "gateway", port, metrics)
                for i, (port, metrics) in enumerate(self.gateway_ports(), 1)
            ]
        )
