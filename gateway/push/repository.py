"""The journal: each user's recent events in a Redis stream of their own, so that a client that
reconnects catches up on what it missed (`last_event_id`).

Every instance that receives an event records it (from the journal queue, and from its own
queue before pushing it), and the event's id makes that idempotent: the first record adds it
to the stream, the others find it there. Each records in the order it received, so the stream
holds the order the events were announced in. The stream keeps the last `window` seconds and
expires with them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS: the user's stream, the event's marker. ARGV: event id, message, window (ms), now (ms).
# The marker outlives the stream's entry (twice the window): a copy that arrives late is
# recognised, not added again after the entry was trimmed.
RECORD = """
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', 2 * tonumber(ARGV[3])) then
    redis.call('XADD', KEYS[1], 'MINID', tonumber(ARGV[4]) - tonumber(ARGV[3]), '*',
               'id', ARGV[1], 'message', ARGV[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Kept:
    """An event kept for a user: its id and the message as the socket receives it."""

    id: str
    message: str


class Journal:
    """Each user's events of the last `window` seconds, in the order the gateway first had
    them."""

    def __init__(self, redis: Redis, *, prefix: str, window: float, limit: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._window_ms = round(window * 1000)
        self._limit = limit
        self._record = redis.register_script(RECORD)

    async def record(self, events: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Keep events (user id, event id, message) for their users, in this order, in one
        round trip; for each, whether it was new."""
        now = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, event_id, message in events:
                await self._record(
                    keys=[self._stream(user_id), f"{self._prefix}push:seen:{event_id}"],
                    args=[event_id, message, self._window_ms, now],
                    client=pipe,
                )
            added = await pipe.execute()
        return [bool(new) for new in added]

    async def kept(self, user_id: str) -> list[Kept]:
        """The user's events within the window, oldest first (at most `limit`, the newest)."""
        start = int(time.time() * 1000) - self._window_ms
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrevrange(  # type: ignore[assignment]
            self._stream(user_id), max="+", min=str(start), count=self._limit
        )
        return [
            Kept(fields[b"id"].decode(), fields[b"message"].decode())
            for _, fields in reversed(entries)
        ]

    def _stream(self, user_id: str) -> str:
        return f"{self._prefix}push:user:{user_id}"
