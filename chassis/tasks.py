"""Background tasks of an app: run for the app's life, watched, reported when they end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from chassis.errors import DATABASE_FAILURES
from chassis.telemetry import untraced

BACKGROUND = web.AppKey["BackgroundTasks"]("background")

log = logging.getLogger("relais.jobs")


class TaskDied(RuntimeError):
    """A background task ended while its app runs."""


class BackgroundTasks:
    """The app's background tasks. One that ends while the app runs (an exception, or a
    return) is logged at once and fails the readiness check until the process restarts: a
    relay, listener or flusher that stopped would otherwise stop silently."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}

    def watch(self, task: asyncio.Task[None]) -> None:
        """Report `task` if it ends other than by being cancelled."""
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():  # stopped with its app
            return
        error = task.exception()
        self.ended[task.get_name()] = repr(error) if error else "returned"
        log.error("background task %s ended", task.get_name(), exc_info=error)

    def check(self) -> None:
        """Raise `TaskDied` naming every task that ended."""
        if self.ended:
            raise TaskDied(", ".join(f"{name} ({why})" for name, why in self.ended.items()))


@contextlib.asynccontextmanager
async def background(
    app: web.Application, coroutine: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[None]:
    """Run `coroutine` as a task of the app for the block's duration, then cancel it and wait
    for it; if it ends before, the app's `BackgroundTasks` report it.

    The task makes no spans of its own: polls, purges and listeners would bury the requests'
    traces (the outbox relay publishes each row under the context the row carries)."""
    with untraced():  # the task copies the context it is created in
        task = asyncio.create_task(coroutine, name=name)
    app[BACKGROUND].watch(task)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # an error it ended with was reported when it ended


async def repeat(
    job: Callable[[], Awaitable[int]], *, every: float, what: str, quiet: bool = False
) -> None:
    """Run `job` every `every` seconds for the app's life, logging how many things it did
    (unless `quiet`: doing some is its normal state) and any failure of a round (the next
    round retries)."""
    while True:
        try:
            count = await job()
        except DATABASE_FAILURES as exc:
            log.warning("%s failed: %r", what, exc)
        except Exception:
            log.exception("%s failed", what)
        else:
            if count and not quiet:
                log.info("%s: %d", what, count)
        await asyncio.sleep(every)
