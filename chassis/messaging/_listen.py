"""PostgreSQL LISTEN on one dedicated connection, reconnected after a loss.

NOTIFY is transactional: a listener hears of a change only once it is committed, so a waiter
woken by it reads the new state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from chassis.errors import DATABASE_FAILURES
from chassis.settings import SETTINGS
from chassis.tasks import background

PG_LISTENER = web.AppKey["PgListener"]("pg_listener")

log = logging.getLogger("relais.listen")
Callback = Callable[[str], None]
RECONNECT_DELAY = 1.0


class PgListener:
    """Calls each channel's callbacks with a notification's payload.

    After a reconnect every callback gets an empty payload: notifications sent while the
    connection was down are lost, so listeners must look again.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback) -> None:
        """Call `callback(payload)` on every notification of `channel` (subscribe before run)."""
        self._callbacks[channel].append(callback)

    def _dispatch(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for callback in self._callbacks.get(channel, ()):
            callback(str(payload))

    async def run(self) -> None:
        """Listen for the app's life, reconnecting with a pause after each loss."""
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn)
            except DATABASE_FAILURES as exc:
                log.warning("LISTEN connection failed: %r", exc)
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            try:
                conn.add_termination_listener(_setter(lost))
                for channel in self._callbacks:
                    await conn.add_listener(channel, self._dispatch)
                self.connected.set()
                for channel in self._callbacks:  # whatever was missed while disconnected
                    self._dispatch(conn, 0, channel, "")
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except DATABASE_FAILURES as exc:
                log.warning("LISTEN connection failed: %r", exc)
            finally:
                self.connected.clear()
                conn.terminate()
            await asyncio.sleep(RECONNECT_DELAY)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _: event.set()


def setup_pg_listener(app: web.Application) -> PgListener:
    """Give the app a listener; contexts subscribe during startup, `listening` runs it."""
    listener = PgListener(app[SETTINGS].database_url)
    app[PG_LISTENER] = listener
    return listener


async def listening(app: web.Application) -> AsyncIterator[None]:
    """Run the app's listener (append after every context that subscribes)."""
    async with background(app, app[PG_LISTENER].run(), "pg-listener"):
        yield
