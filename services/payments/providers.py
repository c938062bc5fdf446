"""Payment providers behind one interface, and the guard every call to one passes through.

`Provider.charge` and `Provider.refund` carry our idempotency key (the payment's or the refund's
id), so a retried call never moves money twice. `find_charge` and `find_refund` ask what became
of one (the reconciler's question, and how a webhook is confirmed), and `cancel_charge` gives up
on a charge still waiting for the buyer. Their answers:

    ProviderError            the call's outcome is unknown: retry later with the same key
    ├── ProviderTimeout      no answer within the timeout (money may have moved)
    └── ProviderUnavailable  connection refused, 5xx, 429, key in use, circuit open
    an `Outcome`             succeeded, failed (with a code: no money moved) or processing
    None (find_*)            the provider has no record of it: it never reached them
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import orjson
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from contracts import ProviderStatus, decimal_amount

Status = ProviderStatus
T = TypeVar("T")


class ProviderError(Exception):
    """The provider's answer is unknown; the same call may be retried with the same key."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""


class ProviderUnavailable(ProviderError):
    """The provider could not take the call now."""


@dataclass(frozen=True)
class Outcome:
    """What the provider says of a charge or a refund (with the amount it holds, when it says)."""

    status: Status
    provider_ref: str | None = None
    failure_code: str | None = None
    amount_cents: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Charge:
    key: str
    amount_cents: int
    currency: str
    payment_method: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Refund:
    key: str
    provider_ref: str
    amount_cents: int
    metadata: dict[str, str]


class Provider(Protocol):
    name: str

    async def charge(self, charge: Charge) -> Outcome:
        """Charge once per key; a repeated key replays the first outcome."""
        ...

    async def refund(self, refund: Refund) -> Outcome:
        """Refund once per key."""
        ...

    async def find_charge(self, key: str, provider_ref: str | None) -> Outcome | None:
        """What became of the charge made with `key`; None if the provider never saw it."""
        ...

    async def cancel_charge(self, key: str, provider_ref: str | None) -> Outcome:
        """Give up on a charge still waiting (for the buyer, say): failed, or succeeded if it
        completed first."""
        ...

    async def find_refund(
        self, key: str, provider_ref: str | None, charge_ref: str
    ) -> Outcome | None:
        """What became of the refund made with `key`; None if the provider never saw it."""
        ...


# Stripe's test tokens and what the sandbox does with them.
SANDBOX_TOKENS: dict[str, Outcome] = {
    "tok_visa": Outcome("succeeded"),
    "tok_chargeDeclined": Outcome("failed", failure_code="card_declined"),
    "tok_insufficientFunds": Outcome("failed", failure_code="insufficient_funds"),
    "tok_timeout": Outcome("succeeded"),  # charged, but the answer never comes
    "tok_threeDSecure2Required": Outcome("processing"),  # waits for the buyer, who never acts
}
HANG_SECONDS = 3600.0
# What every charge gets during an outage the sandbox is told of: Stripe's code for a charge its
# side failed (not the card's: the platform's failure, counted against the checkout SLO).
OUTAGE = Outcome("failed", failure_code="processing_error")
# Replaces a charge's outcome only while it is still processing (a cancel racing a success).
_CANCEL_IF_PROCESSING = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return nil end
local entry = cjson.decode(stored)
if entry['outcome']['status'] ~= 'processing' then return stored end
entry['outcome'] = cjson.decode(ARGV[2])
local updated = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], updated)
return updated
"""


class SandboxProvider:
    """A simulated provider whose books live in Redis, so they outlive a worker's crash."""

    name = "sandbox"

    def __init__(
        self, redis: Redis, *, prefix: str, latency: float = 0.0, failure_rate: float = 0.0
    ) -> None:
        self.redis = redis
        self.charges_key = f"{prefix}sandbox:charges"
        self.refunds_key = f"{prefix}sandbox:refunds"
        self.calls_key = f"{prefix}sandbox:calls"
        self.outage_key = f"{prefix}sandbox:outage"
        self.latency = latency
        self.failure_rate = failure_rate
        self._cancel = redis.register_script(_CANCEL_IF_PROCESSING)

    async def _simulate(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failure_rate and random.random() < self.failure_rate:  # noqa: S311
            raise ProviderUnavailable("sandbox: simulated outage")

    async def _book(
        self, books: str, key: str, outcome: Outcome, metadata: dict[str, str]
    ) -> Outcome:
        """Record the outcome under `key` unless one is recorded; the recorded one wins."""
        entry = {"outcome": asdict(outcome), "metadata": metadata}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.calls_key, key, 1)
            pipe.hsetnx(books, key, orjson.dumps(entry))
            pipe.hget(books, key)
            _, _, stored = await pipe.execute()
        return _outcome(stored)

    async def set_outage(self, seconds: float) -> None:
        """Fail every charge for `seconds` (0 ends an outage): a game day's provider outage."""
        if seconds > 0:
            await self.redis.set(self.outage_key, "1", px=int(seconds * 1000))
        else:
            await self.redis.delete(self.outage_key)

    async def charge(self, charge: Charge) -> Outcome:
        await self._simulate()
        planned = SANDBOX_TOKENS.get(
            charge.payment_method, Outcome("failed", failure_code="invalid_payment_method")
        )
        if await self.redis.exists(self.outage_key):
            planned = OUTAGE  # the provider's side fails the charge, whatever the card
        ref = f"pi_sandbox_{charge.key.replace('-', '')}"
        amount = {"amount": decimal_amount(charge.amount_cents, charge.currency)}
        outcome = await self._book(
            self.charges_key,
            charge.key,
            Outcome(
                planned.status, ref, planned.failure_code, charge.amount_cents, charge.currency
            ),
            {**charge.metadata, **amount, "currency": charge.currency},
        )
        if charge.payment_method == "tok_timeout":
            await asyncio.sleep(HANG_SECONDS)
        return outcome

    async def refund(self, refund: Refund) -> Outcome:
        await self._simulate()
        ref = f"re_sandbox_{refund.key.replace('-', '')}"
        return await self._book(
            self.refunds_key,
            refund.key,
            Outcome("succeeded", ref, amount_cents=refund.amount_cents),
            {**refund.metadata, "charge": refund.provider_ref},
        )

    async def find_charge(self, key: str, provider_ref: str | None) -> Outcome | None:
        await self._simulate()
        stored = await self.redis.hget(self.charges_key, key)
        return None if stored is None else _outcome(stored)

    async def cancel_charge(self, key: str, provider_ref: str | None) -> Outcome:
        await self._simulate()
        cancelled = Outcome("failed", provider_ref, "canceled")
        stored = await self._cancel(
            keys=[self.charges_key], args=[key, orjson.dumps(asdict(cancelled))]
        )
        if stored is None:
            return Outcome("failed", provider_ref, "canceled")  # nothing to cancel
        return _outcome(stored)

    async def settle(self, key: str, outcome: Outcome) -> bool:
        """The sandbox's control: the charge booked under `key` ends with `outcome` (what the
        buyer or the bank finally did); False if no such charge was booked."""
        stored = await self.redis.hget(self.charges_key, key)
        if stored is None:
            return False
        entry = orjson.loads(stored)
        entry["outcome"] = asdict(outcome)
        await self.redis.hset(self.charges_key, key, orjson.dumps(entry))
        return True

    async def find_refund(
        self, key: str, provider_ref: str | None, charge_ref: str
    ) -> Outcome | None:
        await self._simulate()
        stored = await self.redis.hget(self.refunds_key, key)
        return None if stored is None else _outcome(stored)


def _outcome(stored: bytes | str) -> Outcome:
    return Outcome(**orjson.loads(stored)["outcome"])


async def sandbox_books(redis: Redis, prefix: str) -> list[dict[str, Any]]:
    """Every charge the sandbox booked: idempotency key, outcome, metadata and calls seen."""
    books = await redis.hgetall(f"{prefix}sandbox:charges")
    calls = await redis.hgetall(f"{prefix}sandbox:calls")
    return [
        {"key": _text(key), **orjson.loads(value), "calls": int(calls.get(key, 0))}
        for key, value in books.items()
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GuardedProvider:
    """A provider behind a timeout, retries with back-off and a circuit breaker."""

    def __init__(
        self,
        provider: Provider,
        *,
        timeout: float,
        attempts: int,
        breaker_threshold: int,
        breaker_reset: float,
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.timeout = timeout
        self.attempts = attempts
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_reset
        )

    async def _guarded(self, call: str, make: Callable[[], Awaitable[T]]) -> T:
        # Transient refusals are retried here; a timeout is not (the slot would be held for
        # attempts x timeout): the consumer retries it later from a retry queue.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ProviderUnavailable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
            reraise=True,
        ):
            with attempt:
                try:
                    breaker = await self.breakers.get_breaker(f"{self.name}.{call}")
                    async with breaker, asyncio.timeout(self.timeout):
                        return await make()
                except TimeoutError as exc:
                    raise ProviderTimeout(f"{self.name} {call}: no answer in time") from exc
                except OpenedState as exc:
                    raise ProviderUnavailable(f"{self.name} {call}: circuit open") from exc
        raise AssertionError("unreachable")

    async def charge(self, charge: Charge) -> Outcome:
        return await self._guarded("charge", lambda: self.provider.charge(charge))

    async def refund(self, refund: Refund) -> Outcome:
        return await self._guarded("refund", lambda: self.provider.refund(refund))

    async def find_charge(self, key: str, provider_ref: str | None) -> Outcome | None:
        return await self._guarded("find", lambda: self.provider.find_charge(key, provider_ref))

    async def cancel_charge(self, key: str, provider_ref: str | None) -> Outcome:
        return await self._guarded("cancel", lambda: self.provider.cancel_charge(key, provider_ref))

    async def find_refund(
        self, key: str, provider_ref: str | None, charge_ref: str
    ) -> Outcome | None:
        return await self._guarded(
            "find", lambda: self.provider.find_refund(key, provider_ref, charge_ref)
        )
