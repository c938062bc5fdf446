"""App factory helpers shared by every service, and the process entry point."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import uvloop
from aiohttp import web

from chassis.http._middleware import edge_middleware
from chassis.http._problems import add_problem_pages
from chassis.settings import SETTINGS, ServiceSettings
from chassis.tasks import BACKGROUND, BackgroundTasks, background
from chassis.telemetry import (
    ACCESS_LOG,
    TRACER,
    AccessLog,
    configure_logging,
    server_tracer,
    setup_metrics,
    start_tracing,
    stop_tracing,
)

log = logging.getLogger("relais.service")
S = TypeVar("S", bound=ServiceSettings)
MAX_BODY_BYTES = 1024 * 1024
BACKLOG = 1024


def create_service_app(settings: ServiceSettings) -> web.Application:
    """A bare service app: settings, metrics, access log and the edge middleware."""
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[TRACER] = server_tracer(settings.otel_traces_sampler_arg)
    app[BACKGROUND] = BackgroundTasks()
    metrics = setup_metrics(app, settings.service_name)
    app[ACCESS_LOG] = AccessLog(settings.service_name, dropped=metrics.access_log_dropped)
    app.cleanup_ctx.append(_access_log_flusher)
    add_problem_pages(app)
    return app


async def _access_log_flusher(app: web.Application) -> AsyncIterator[None]:
    async with background(app, app[ACCESS_LOG].run(), "access-log"):
        yield


def serve(create_app: Callable[[S], web.Application], settings: S) -> None:
    """The process: logging and tracing first (instrumented apps are built after them), then
    the app served until SIGINT/SIGTERM, then the spans still queued are exported."""
    configure_logging(service=settings.service_name, level=settings.log_level)
    tracing = start_tracing(settings)
    try:
        app = create_app(settings)
        # What startup made lives as long as the process: out of the collector's way, so a
        # full collection does not walk every module and instrumentation on the request path.
        gc.collect()
        gc.freeze()
        run_service(app, settings)
    finally:
        stop_tracing(tracing)


def run_service(app: web.Application, settings: ServiceSettings) -> None:
    """Serve `app` on uvloop until SIGINT/SIGTERM, then shut down gracefully."""
    where = {
        "host": settings.http_host,
        "port": settings.http_port,
        "metrics_port": settings.metrics_port,
    }
    unix = UnixSocket(settings.http_unix_socket) if settings.http_unix_socket else None

    def serving(*_: object) -> None:
        """Every socket listens now (aiohttp calls this once its sites have started)."""
        if unix is not None:
            unix.publish()
        log.info("serving", extra=where)

    async def farewell(app: web.Application) -> None:
        log.info("stopping", extra=where)

    app.on_shutdown.append(farewell)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        sock=[unix.socket] if unix is not None else None,
        backlog=BACKLOG,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        print=serving,
    )


class UnixSocket:
    """A Unix socket for its owner and its folder's group (a proxy running as another user
    reaches it through that group, which a setgid folder passes on), bound under a temporary
    name and moved to `path` once it listens: bound but not yet listening, it would refuse
    connections, and NGINX would count the refusals against the instance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._bound = path.with_name(f".{path.name}.{os.getpid()}")
        self._bound.unlink(missing_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.bind(str(self._bound))
        self._bound.chmod(0o660)

    def publish(self) -> None:
        """Put the listening socket at its path (replacing a stale one of an earlier run)."""
        os.replace(self._bound, self.path)
