"""The gateway's endpoint: `GET /ws`, a WebSocket that pushes the caller's events.

Refused before the upgrade, as problem+json: no, a bad or a revoked token (401), a bad
`last_event_id` (422), a plain request (426), one socket too many for the user here (429).
Messages are JSON `{id, type, occurred_at, data}`; the client sends nothing the gateway reads
(its pongs answer the heartbeat).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from chassis.errors import TooManyRequests, UpgradeRequired
from chassis.http import CLAIMS, authenticated, query_params
from gateway.keys import GATEWAY_SETTINGS, HUB
from gateway.push.repository import Kept
from gateway.push.service import Socket, Token

log = logging.getLogger("relais.gateway")

# How many times a resume reads the journal, `settle` apart, waiting for it to catch up with
# the live events, and at most how many of them it waits for the client's last event.
RESUME_ATTEMPTS = 20
ID_ATTEMPTS = 5
# What a client may send in one message (the gateway reads none: this only bounds the buffer).
MAX_CLIENT_MESSAGE = 4096


class SocketQuery(BaseModel):
    """`GET /ws`'s query: the last event the client received, and its token if it cannot send
    an `Authorization` header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    last_event_id: UUID | None = None
    access_token: str | None = None


async def socket(request: web.Request) -> web.StreamResponse:
    """Open the caller's socket and push their events to it until either side closes it."""
    client, resume_from = await _accept(request)
    hub, ws = client.hub, client.ws
    try:
        await ws.prepare(request)
        if resume_from is not None:
            settle = request.app[GATEWAY_SETTINGS].gateway_resume_settle
            await _resume(client, resume_from, settle=settle)
        else:
            await client.catch_up([], resync=None)
        async for _ in ws:  # nothing a client says is read; this waits for the close
            pass
    except (ConnectionError, RuntimeError) as exc:
        log.debug("socket of %s ended: %r", client.user_id, exc)
    finally:  # also when aiohttp cancels the handler of a connection that is gone
        hub.leave(client)
        if client.closing is None and isinstance(ws.exception(), asyncio.TimeoutError):
            hub.metrics.dropped("dead_peer")  # no pong within half the heartbeat
    return ws


async def _accept(request: web.Request) -> tuple[Socket, str | None]:
    """Check the request, and route the caller's events here before the handshake completes
    (an event announced once the client sees its socket open reaches it; what arrives
    meanwhile waits for the handshake and the catch-up): the socket, and the event to resume
    after. What it reads of the request is let go with it: every open socket would hold it."""
    principal = await authenticated(request, query_token=True)
    query = query_params(request, SocketQuery)
    hub, settings = request.app[HUB], request.app[GATEWAY_SETTINGS]
    # No per-message deflate: a zlib stream per socket costs a few hundred KiB once used, to
    # shrink messages of a few hundred bytes.
    ws = web.WebSocketResponse(
        heartbeat=settings.gateway_heartbeat, max_msg_size=MAX_CLIENT_MESSAGE, compress=False
    )
    if not ws.can_prepare(request).ok:
        raise UpgradeRequired("GET /ws opens a WebSocket: send `Upgrade: websocket`")
    if hub.full(principal.user_id):
        raise TooManyRequests(
            f"At most {settings.gateway_sockets_per_user} sockets per user", retry_after=5
        )
    client = Socket(hub, ws, request.transport, principal.user_id, Token.of(request.pop(CLAIMS)))
    client.hold()
    await hub.join(client)
    resume_from = query.last_event_id
    return client, str(resume_from) if resume_from is not None else None


async def _resume(client: Socket, last_event_id: str, *, settle: float) -> None:
    """Send what the client missed since `last_event_id`, then what arrived meanwhile.

    The journal is written in the order of announcement by one consumer, which may lag: it is
    read once it holds `last_event_id` (the client received it, so it is on its way) and the
    first event that came live since the socket was routed here (then it holds every event
    before). With no live event to go by, it has had `settle` seconds to record what was
    announced just before. An id that does not show up in time gets a `resync` first."""
    hub = client.hub
    kept: list[Kept] = []
    for attempt in range(1, RESUME_ATTEMPTS + 1):
        await asyncio.sleep(settle)
        kept = await hub.journal.kept(client.user_id)
        ids = {event.id for event in kept}
        first_live = client.first_held()
        known = last_event_id in ids or attempt >= ID_ATTEMPTS
        if known and (first_live is None or first_live in ids):
            break
    ids_in_order = [event.id for event in kept]
    if last_event_id in ids_in_order:
        after = kept[ids_in_order.index(last_event_id) + 1 :]
        hub.metrics.resumes.labels(hub.metrics.service, "resumed").inc()
        resync = None
    else:
        after = kept
        hub.metrics.resumes.labels(hub.metrics.service, "resync").inc()
        resync = "last_event_id is no longer kept: fetch the state you show, then carry on"
    await client.catch_up([(event.id, event.message) for event in after], resync=resync)
