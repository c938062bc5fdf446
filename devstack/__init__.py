"""The native dev stack: `python -m devstack up|down|status|logs|admin` (behind `make`).

`up` prepares what is missing (development keys and certificate, the PostgreSQL roles and
database, the services' migrations run by the services themselves, the RabbitMQ vhost and
users), starts the core instances, the payments service, Prometheus, Alertmanager and the
exporters under a supervisord of the stack's own (restarted whenever one ends, logs rotated),
then NGINX, and waits until every one is ready. Running it again starts only what is not
running. `down` stops everything `up` started. Every path, port and name comes from the
environment (`StackSettings`, see the README), so a test can run a stack of its own beside a
developer's. The stack starts services as processes; it never imports them.
"""

from devstack.broker import drop_broker
from devstack.commands import admin, down, status, up
from devstack.database import drop_database
from devstack.localhttp import http_status
from devstack.nginx import start_nginx
from devstack.processes import (
    ensure_supervisor,
    follow_logs,
    pids,
    prepare_dirs,
    program_pids,
    show_logs,
    start_process,
    stop_pid_file,
    supervisorctl,
)
from devstack.secrets import ensure_keys
from devstack.services import check_settings, service_env, tracing_enabled
from devstack.settings import ROOT, StackSettings

__all__ = [
    "ROOT",
    "StackSettings",
    "admin",
    "check_settings",
    "down",
    "drop_broker",
    "drop_database",
    "ensure_keys",
    "ensure_supervisor",
    "follow_logs",
    "http_status",
    "pids",
    "prepare_dirs",
    "program_pids",
    "service_env",
    "show_logs",
    "start_nginx",
    "start_process",
    "status",
    "stop_pid_file",
    "supervisorctl",
    "tracing_enabled",
    "up",
]
