"""The benchmark's baseline: a bare aiohttp app on the same settings as core (uvloop, orjson,
no access log), answering `GET /api/hello`, and holding WebSockets at `GET /ws` with the
gateway's heartbeat (what an idle socket costs aiohttp itself)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from chassis.http import BACKLOG, UnixSocket

BODY = orjson.dumps({"message": "hello"})


async def hello(request: web.Request) -> web.Response:
    """The smallest JSON answer."""
    return web.Response(body=BODY, content_type="application/json")


async def socket(request: web.Request) -> web.WebSocketResponse:
    """A WebSocket that says nothing until the client closes it."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, compress=False)
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


def main() -> None:
    """Serve on `--port`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unix", type=Path, help="also listen on this Unix socket")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/api/hello", hello)
    app.router.add_get("/ws", socket)
    unix = UnixSocket(args.unix) if args.unix else None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        sock=[unix.socket] if unix else None,
        backlog=BACKLOG,
        access_log=None,
        print=lambda *_: unix.publish() if unix else None,
    )


if __name__ == "__main__":
    main()
