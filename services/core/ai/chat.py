"""The shopping assistant: each turn retrieves the catalog's products nearest in meaning to the
conversation so far (the AI worker's semantic search) and answers from them.

- Conversations live in Redis: the account that started one owns it (another account's id is
  404), its last `ai_chat_turns` turns are kept, and it expires `ai_chat_ttl` seconds after its
  last turn. A turn is appended atomically (MULTI), so two turns at once both stay.
- The reply comes from an OpenAI-compatible chat-completions API when one is configured
  (`LLM_BASE_URL`, `LLM_API_KEY`), given the retrieved products as context and the history,
  streamed when the client asks for `text/event-stream`. Each call is bounded by a connect, a
  read (between chunks) and a total timeout, and a circuit breaker stops asking an API that
  keeps failing. Without an API, or while it fails, a template writes the reply from the
  retrieved products (`source: catalog`): the assistant degrades, it does not fail.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import orjson
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from redis.asyncio import Redis

from chassis.errors import NotFound
from contracts import decimal_amount

log = logging.getLogger("relais.chat")
# Past messages that make up the retrieval query with the new one.
QUERY_MESSAGES = 3
SYSTEM_PROMPT = (
    "You are the shopping assistant of an online shop. Answer the customer briefly, only from "
    "the products listed below, by name and price; if none fits, say so and ask what they "
    "need. Never invent a product.\n\nProducts:\n{products}"
)


class LanguageModelFailed(Exception):
    """The chat-completions API did not answer (timeout, error status, open circuit)."""


@dataclass(frozen=True)
class Turn:
    """What the assistant retrieved for a message, and the history before it."""

    conversation_id: UUID
    message: str
    history: list[dict[str, str]]
    products: list[dict[str, Any]]


class Conversations:
    """Conversations in Redis: a list of messages per conversation and its owner beside it."""

    def __init__(self, redis: Redis, prefix: str, *, ttl: int, turns: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self.turns = turns

    def _keys(self, conversation_id: UUID) -> tuple[str, str]:
        key = f"{self.prefix}chat:{conversation_id}"
        return key, f"{key}:owner"

    async def history(self, conversation_id: UUID | None, user_id: str) -> list[dict[str, str]]:
        """The conversation's messages, oldest first (none for a new one); 404 if it is not
        the account's or has expired."""
        if conversation_id is None:
            return []
        messages, owner = self._keys(conversation_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(owner)
            pipe.lrange(messages, 0, -1)
            found, raw = await pipe.execute()
        if found is None or found.decode() != user_id:
            raise NotFound("No such conversation (it may have expired)")
        return [orjson.loads(item) for item in raw]

    async def append(self, conversation_id: UUID, user_id: str, message: str, reply: str) -> None:
        """Add a turn, keep the last `turns`, and restart the conversation's time to live."""
        messages, owner = self._keys(conversation_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(owner, user_id, ex=self.ttl)
            pipe.rpush(
                messages,
                orjson.dumps({"role": "user", "content": message}),
                orjson.dumps({"role": "assistant", "content": reply}),
            )
            pipe.ltrim(messages, -2 * self.turns, -1)
            pipe.expire(messages, self.ttl)
            await pipe.execute()


def retrieval_query(history: Sequence[dict[str, str]], message: str) -> str:
    """What the catalog is searched for: the customer's last messages, the new one last."""
    said = [item["content"] for item in history if item["role"] == "user"]
    return " ".join([*said[-(QUERY_MESSAGES - 1) :], message])[-500:]


def price(product: dict[str, Any]) -> str:
    """A product's price as a customer reads it."""
    currency = product["currency"].strip()
    return f"{currency} {decimal_amount(product['price_cents'], currency)}"


def template_reply(turn: Turn) -> str:
    """A reply written from the retrieved products alone (no language model)."""
    if not turn.products:
        return (
            "I found nothing in our catalog that matches. Could you tell me more about what "
            "you are looking for?"
        )
    lines = [
        f"- {product['name']} ({price(product)})" + first_sentence(product["description"])
        for product in turn.products
    ]
    return "From our catalog, these match what you asked:\n" + "\n".join(lines)


def first_sentence(text: str) -> str:
    """`: ` and a description's first sentence (at most 160 characters); nothing without one."""
    sentence = text.strip().split(". ")[0].rstrip(".")
    if not sentence:
        return ""
    return ": " + ((sentence[:157] + "...") if len(sentence) > 160 else (sentence + "."))


def prompt(turn: Turn) -> list[dict[str, str]]:
    """The chat-completions messages: the products as the system's context, the history, the
    new message."""
    listed = "\n".join(
        f"- {p['name']} [{p['id']}] ({p['category']}, {price(p)}): {p['description']}"
        for p in turn.products
    )
    system = {"role": "system", "content": SYSTEM_PROMPT.format(products=listed or "(none)")}
    return [system, *turn.history, {"role": "user", "content": turn.message}]


def completions_url(base_url: str) -> str:
    """The chat-completions endpoint under an API's base URL: OpenAI's convention puts the
    version in the base (`https://api.openai.com/v1`); a bare host gets `/v1`."""
    base = base_url.rstrip("/")
    if not urllib.parse.urlsplit(base).path:
        base += "/v1"
    return base + "/chat/completions"


class LanguageModel:
    """An OpenAI-compatible chat-completions API behind timeouts and a circuit breaker."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        model: str,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        breaker_threshold: int,
        breaker_reset: float,
    ) -> None:
        self.session = session
        self.url = completions_url(base_url)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.model = model
        self.timeout = aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_reset
        )

    async def stream(
        self, messages: list[dict[str, str]], *, stream: bool = True
    ) -> AsyncIterator[str]:
        """The model's reply, chunk by chunk as the API streams it (server-sent events), or
        whole in one chunk (`stream=False`)."""
        body = {"model": self.model, "messages": messages, "stream": stream, "temperature": 0.2}
        try:
            breaker = await self.breakers.get_breaker("chat")
            async with (
                breaker,
                self.session.post(
                    self.url, json=body, headers=self.headers, timeout=self.timeout
                ) as response,
            ):
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise LanguageModelFailed(f"status {response.status}: {detail}")
                if not stream:
                    answer = await response.json(loads=orjson.loads)
                    yield answer["choices"][0]["message"]["content"] or ""
                    return
                async for line in response.content:
                    data = line.strip()
                    if not data.startswith(b"data:"):
                        continue  # blank lines, comments, other fields
                    data = data[5:].strip()
                    if data == b"[DONE]":
                        return
                    delta = orjson.loads(data)["choices"][0].get("delta", {})
                    if delta.get("content"):
                        yield delta["content"]
        except OpenedState as exc:
            raise LanguageModelFailed("circuit open: the API failed too often") from exc
        except (aiohttp.ClientError, TimeoutError, KeyError, IndexError, ValueError) as exc:
            raise LanguageModelFailed(repr(exc)) from exc


async def replies(
    turn: Turn, model: LanguageModel | None, *, stream: bool
) -> AsyncIterator[tuple[str, str]]:
    """The reply's chunks and who wrote them (`llm`, `catalog`): the model's when it answers
    (streamed or whole), else the template's. A model that fails after its first chunk ends
    the reply there."""
    if model is not None:
        started = False
        try:
            async for chunk in model.stream(prompt(turn), stream=stream):
                started = True
                yield chunk, "llm"
            return
        except LanguageModelFailed as exc:
            log.warning("the language model failed (%s): the template answers", exc)
            if started:
                yield "\n\n(The assistant was interrupted.)", "llm"
                return
    yield template_reply(turn), "catalog"
