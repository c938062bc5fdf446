"""The stack's commands: up, down, status, admin."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys

from devstack.backups import is_local, setup_archiving
from devstack.broker import declare_queues, enable_broker_metrics, ensure_broker
from devstack.database import ensure_database, migrate
from devstack.nginx import api_document_path, publish_api_document, publish_docs, start_nginx
from devstack.observability import EXPORTERS, start_exporters, start_observability
from devstack.processes import (
    pids,
    prepare_dirs,
    start_process,
    stop_pid_file,
    stop_supervisor,
    supervisor_running,
    supervisorctl,
)
from devstack.readiness import datastores, readiness, report, wait_ready
from devstack.replica import PROGRAM as REPLICA_PROGRAM
from devstack.replica import ensure_replica
from devstack.secrets import ensure_keys
from devstack.services import check_settings, service_env, tracing_enabled
from devstack.settings import StackSettings


def running_config(config: StackSettings) -> StackSettings:
    """The configuration of the stack in `config`'s state folder: the one it was started with
    while it runs, else `config` (from the caller's environment)."""
    saved = config.saved()
    return saved if saved is not None and supervisor_running(saved) else config


def up(requested: StackSettings) -> None:
    """Bring the whole native stack up (idempotent). A running stack keeps the configuration it
    was started with, whatever the caller's environment says now: a change is `restart`."""
    config = running_config(requested)
    running = config is not requested  # then its database, broker and settings were prepared
    if running:
        changed = requested.changes_from(config)
        if changed:
            print(
                "the stack runs with the configuration it was started with; not applied from "
                f"your environment: {', '.join(changed)} (`make restart` applies them)"
            )
    prepare_dirs(config)
    config.save()
    ensure_keys(config)
    traced = tracing_enabled(config)  # one answer for every process
    if not running:
        setup_archiving(config)
        asyncio.run(ensure_database(config))
        migrate(config)
        ensure_broker(config)
        declare_queues(config)
        enable_broker_metrics()
        check_settings(config, traced=traced)
    if config.replica:
        ensure_replica(config)
    for name, module, port, metrics_port in config.processes():
        start_process(
            name,
            [sys.executable, "-m", module],
            service_env(config, name, port, metrics_port, traced=traced),
            config,
        )
    if not running or not api_document_path(config).exists():
        publish_api_document(config)
    publish_docs(config)
    start_nginx(
        config, config.core_upstreams(), config.payments_upstreams(), config.gateway_upstreams()
    )
    start_observability(config)
    start_exporters(config)
    wait_ready(config)
    print(
        f"Relais is up ({config.core_instances} core instances, "
        f"{config.payments_instances} payments worker, {config.ai_instances} AI worker, "
        f"{config.gateway_instances} realtime gateway instances)"
    )
    print(
        f"  API        http://127.0.0.1:{config.nginx_port}/api/   https://127.0.0.1:{config.nginx_tls_port}/api/"
    )
    print(f"  API docs   http://127.0.0.1:{config.nginx_port}/api/docs")
    if config.load_test_limits:
        print(
            "  Limits     per-address limits lifted for load tests (LOADTEST_LIMITS=1; "
            "`make restart` without it puts them back)"
        )
    print(
        f"  WebSocket  ws://127.0.0.1:{config.nginx_port}/ws   (your events; token in "
        "Authorization or ?access_token=)"
    )
    for name, _, port, metrics_port in config.processes():
        print(
            f"  {name:<10} http://127.0.0.1:{port}/health/ready   "
            f"metrics http://127.0.0.1:{metrics_port}/metrics"
        )
    print(f"  RabbitMQ   amqp://{config.rabbitmq_host}/{config.rabbitmq_vhost}  (make dlq)")
    print(f"  Prometheus http://127.0.0.1:{config.prometheus_port}/   (rules and alerts loaded)")
    print(
        f"  Alertmanager http://127.0.0.1:{config.alertmanager_port}/   pages and tickets to "
        f"the local receiver on :{config.alert_receiver_port} (make alerts)"
    )
    print(f"  Runbooks   {config.runbooks_url}")
    if is_local(config):
        print(
            f"  Backups    pgBackRest into {config.backup_repo}, WAL archived continuously "
            "(make backup, make backups, make restore-check)"
        )
    if config.replica:
        print(f"  Replica    {config.replica_host}, streaming (the catalog list and reports)")
    traces = (
        f"exported to {config.otlp_endpoint}"
        if traced
        else f"off: nothing listens at {config.otlp_endpoint} (start Jaeger, then `make down up`)"
    )
    print(f"  Traces     {traces}")
    print("  Grafana and Jaeger are not installable here: they run in the compose stack")
    print(f"  logs       {config.log_dir}  (make logs)")


def down(requested: StackSettings) -> None:
    """Stop everything `up` started: NGINX, then every program of the stack's supervisord (each
    with its grace), then supervisord itself; the configuration it ran with is forgotten."""
    config = running_config(requested)
    stopped = []
    nginx_pid = config.run_dir / "nginx" / "nginx.pid"
    if stop_pid_file(nginx_pid, signal.SIGQUIT):
        stopped.append("nginx")
    stopped += stop_supervisor(config)
    if not config.runtime_root:  # a folder of our own making: its sockets are dead now
        shutil.rmtree(config.runtime_dir, ignore_errors=True)
    config.saved_path.unlink(missing_ok=True)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def restart(requested: StackSettings) -> None:
    """Stop the stack and start it again with the caller's configuration."""
    down(requested)
    up(requested)


def expected_processes(config: StackSettings) -> list[str]:
    """What a healthy stack runs: NGINX, the services, the observability programs whose
    binaries are installed (Prometheus, Alertmanager and its receiver, the exporters), the
    backups' exporter, and the replica with `REPLICA=1`."""
    names = ["nginx", *(name for name, *_ in config.processes())]
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        names += ["prometheus", "alertmanager", "alert-receiver"]
    names += [f"{job}-exporter" for job, binary in EXPORTERS.items() if shutil.which(binary)]
    names.append("backup-exporter")
    if config.replica:
        names.append(REPLICA_PROGRAM)
    return names


def status(config: StackSettings) -> bool:
    """Print supervisord's view of every program, each datastore and each readiness check;
    True if everything is up."""
    running = pids(config)
    if supervisor_running(config):
        print(supervisorctl(config, "status").stdout.rstrip())
    healthy = True
    for name in expected_processes(config):
        pid = running.get(name)
        healthy &= pid is not None
        if name == "nginx" or pid is None:
            print(f"{name:<10} {f'running pid {pid}' if pid else 'stopped'}")
    for store, problem in asyncio.run(datastores(config)).items():
        state = "up" if problem is None else "DOWN"
        print(f"{state:<10} {store}" + ("" if problem is None else f": {problem}"))
        healthy &= problem is None
    return report(config, readiness(config)) and healthy


def admin(config: StackSettings, email: str, *, promote: bool, reset: bool = False) -> int:
    """Create an admin in the stack's database, or promote an existing account (`promote`),
    or set its password (`reset`); the password comes from ADMIN_PASSWORD or a prompt."""
    env = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "REDIS_KEY_PREFIX": config.redis_key_prefix,
    }
    argv = [sys.executable, "-m", "services.core.admin", "--email", email]
    argv += ["--promote"] if promote else []
    argv += ["--reset-password"] if reset else []
    return subprocess.run(argv, env=env).returncode


def sandbox_control(config: StackSettings, *args: str) -> int:
    """Run the sandbox's control with the payments worker's settings: settle a waiting payment
    by the sandbox's signed webhook, through NGINX (`--payment ID --outcome O`), or fail every
    charge for a while (`--outage SECONDS`)."""
    name, _, port, metrics_port = next(
        process for process in config.processes() if process[0].startswith("payments")
    )
    env = service_env(config, name, port, metrics_port, traced=False)
    argv = [sys.executable, "-m", "services.payments.sandbox_control", *args]
    return subprocess.run(argv, env=env).returncode


def extra_ai_worker(config: StackSettings, number: int) -> None:
    """Run AI worker `number` (after the stack's own) in the foreground, with the running
    stack's configuration: it shares their RPC queues until it is stopped (Ctrl-C). Its ports
    follow the stack's workers' (8301, 8302…, metrics 9301, 9302…); Prometheus does not scrape
    it."""
    if number <= config.ai_instances:
        sys.exit(
            f"ai-{number} is one of the stack's own workers (AI_INSTANCES={config.ai_instances})"
        )
    offset = number - 1
    port, metrics_port = config.ai_base_port + offset, config.ai_metrics_base_port + offset
    env = service_env(config, f"ai-{number}", port, metrics_port, traced=tracing_enabled(config))
    print(f"ai-{number}: http://127.0.0.1:{port}/health/ready, metrics :{metrics_port}", flush=True)
    os.execvpe(sys.executable, [sys.executable, "-m", "services.ai"], env)  # noqa: S606 - becomes the worker
