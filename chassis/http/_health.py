"""Liveness and readiness endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from chassis.data import DB_POOL, REDIS
from chassis.errors import ServiceUnavailable
from chassis.tasks import BACKGROUND
from chassis.telemetry import untraced

Check = Callable[[web.Application], Awaitable[object]]
CHECK_TIMEOUT = 2.0


async def _postgres(app: web.Application) -> object:
    return await app[DB_POOL].fetchval("SELECT 1")


async def _redis(app: web.Application) -> object:
    return await app[REDIS].ping()


async def _background(app: web.Application) -> object:
    app[BACKGROUND].check()
    return None


DEFAULT_CHECKS: dict[str, Check] = {
    "postgres": _postgres,
    "redis": _redis,
    "background": _background,
}


def setup_health(app: web.Application, checks: dict[str, Check] | None = None) -> None:
    """Serve `/health/live` and `/health/ready` (each dependency checked, with a timeout)."""
    active = dict(DEFAULT_CHECKS if checks is None else checks)

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        async def run(check: Check) -> str:
            try:
                await asyncio.wait_for(check(request.app), CHECK_TIMEOUT)
            except Exception as exc:  # every failure means "not ready"; say which
                return f"down: {type(exc).__name__}: {exc}"[:300]
            return "ok"

        with untraced():  # probes come every few seconds; their spans would bury the requests'
            results = await asyncio.gather(*(run(check) for check in active.values()))
        report = dict(zip(active, results, strict=True))
        failed = [name for name, result in report.items() if result != "ok"]
        if failed:
            raise ServiceUnavailable(
                f"not ready: {', '.join(failed)} down", extra={"checks": report}
            )
        return web.json_response({"status": "ok", "checks": report})

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
