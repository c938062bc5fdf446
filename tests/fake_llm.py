"""A local server speaking the OpenAI chat-completions wire format: `POST /v1/chat/completions`
with a Bearer key, a whole `chat.completion` or, with `"stream": true`, `chat.completion.chunk`
server-sent events ending in `data: [DONE]`; errors as OpenAI's `{"error": {...}}` bodies.

It answers by naming the products the system message lists (so a test can tell the context
arrived); `fail` answers 500 that many times, `stall` seconds of silence precede an answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

API_KEY = "sk-test-relais"
MODEL = "relais-test-model"


class FakeLanguageModel:
    """Records every request it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = 0
        self.stall = 0.0
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        return app

    def answer(self, body: dict[str, Any]) -> list[str]:
        """The reply, in the chunks a stream sends."""
        system = body["messages"][0]["content"]
        names = re.findall(r"^- (.+?) \[", system, flags=re.MULTILINE)
        if not names:
            return ["Sorry, ", "nothing fits."]
        return ["You could ", "look at ", " and ".join(names), "."]

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        body = await request.json()
        self.requests.append(body)
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.fail:
            self.fail -= 1
            return _error(500, "server_error", "The server had an error.")
        chunks = self.answer(body)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(chunks)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        deltas = [{"role": "assistant", "content": ""}, *({"content": c} for c in chunks)]
        for index, delta in enumerate(deltas):
            finish = "stop" if index == len(deltas) - 1 else None
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await asyncio.sleep(0.01)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status=status,
    )
