"""The native stack's alert receiver: `python -m devstack.receiver --port P --store FILE`.

Alertmanager posts its notifications to `/alerts/<receiver>`; each is appended to the JSON Lines
file `--store` (see `devstack.alerts`, which reads it for `make alerts`). A module of its own:
the package's other modules never import it, so `-m` runs it fresh.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web

from devstack.alerts import summarize


def receiver_app(store: Path) -> web.Application:
    """The webhook receiver: every notification appended to `store`."""
    store.parent.mkdir(parents=True, exist_ok=True)

    async def receive(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        line = json.dumps(summarize(request.match_info["receiver"], payload))
        with store.open("a") as file:
            file.write(line + "\n")
        return web.json_response({"kept": True})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts/{receiver}", receive)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    """Run the receiver."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(receiver_app(args.store), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
