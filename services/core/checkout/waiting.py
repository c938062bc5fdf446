"""Waiting for a payment to settle (`Prefer: wait`), woken by the NOTIFY its change sends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from chassis.errors import NotFound
from services.core.checkout import repository
from services.core.checkout.commands import payment_json


class SettlementWaiters:
    """Requests waiting (`Prefer: wait`) for a payment to settle, woken by NOTIFY."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def notify(self, payment_id: str) -> None:
        """A payment changed (an empty id: anything may have; wake everyone)."""
        ids = list(self._waiting) if not payment_id else [payment_id]
        for key in ids:
            for future in self._waiting.pop(key, ()):
                if not future.done():
                    future.set_result(None)

    def watch(self, payment_id: str) -> asyncio.Future[None]:
        """A future woken at the payment's next change (watch before the change can commit)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[payment_id].add(future)
        return future

    def forget(self, payment_id: str, future: asyncio.Future[None]) -> None:
        """Stop watching."""
        waiting = self._waiting.get(payment_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiting[payment_id]

    async def settled(
        self,
        *,
        pool: asyncpg.Pool,
        payment_id: str,
        seconds: float,
        watching: asyncio.Future[None] | None = None,
    ) -> dict[str, Any]:
        """The payment once it is no longer processing, or as it is after `seconds`.

        `watching` is a future from `watch()` taken before the payment was created: it is still
        processing, so the first read is skipped.
        """
        deadline = time.monotonic() + seconds
        future = watching
        try:
            while True:
                if future is None:  # watch, then read: a change after the read wakes us
                    future = self.watch(payment_id)
                    row = await repository.payment_by_id(pool, payment_id)
                    if row is None:
                        raise NotFound("No such payment")
                    if row["status"] != "processing" or time.monotonic() >= deadline:
                        return payment_json(row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, max(deadline - time.monotonic(), 0))
                self.forget(payment_id, future)
                future = None
        finally:
            if future is not None:
                self.forget(payment_id, future)

    @contextlib.asynccontextmanager
    async def waiting(self, payment_id: str) -> AsyncIterator[Settlement]:
        """Watch a payment from before it exists until the block ends: its settlement cannot
        slip past unseen, and the watch is always given up."""
        settlement = Settlement(self, payment_id, self.watch(payment_id))
        try:
            yield settlement
        finally:
            settlement.stop_watching()


class Settlement:
    """A watch on one payment, taken before the payment was created."""

    def __init__(
        self, waiters: SettlementWaiters, payment_id: str, watching: asyncio.Future[None]
    ) -> None:
        self.waiters, self.payment_id = waiters, payment_id
        self.watching: asyncio.Future[None] | None = watching

    def stop_watching(self) -> None:
        """Give the watch up (the payment existed before: read it first when waiting)."""
        if self.watching is not None:
            self.waiters.forget(self.payment_id, self.watching)
            self.watching = None

    async def outcome(self, *, pool: asyncpg.Pool, seconds: float) -> dict[str, Any]:
        """The payment once settled, or as it is after `seconds`."""
        watching, self.watching = self.watching, None
        return await self.waiters.settled(
            pool=pool, payment_id=self.payment_id, seconds=seconds, watching=watching
        )
