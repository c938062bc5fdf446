"""`make bench` (its AI part; `make bench-ai` alone): text analyses through NGINX, core and the
AI worker over RabbitMQ RPC, beside the same work called in-process (the ceiling).

Starts a throwaway stack (its own database, ports, vhost and key prefix) with one AI worker,
then measures in interleaved rounds, at equal concurrency:

- the RPC path: `POST /api/ai/text/analyze` through NGINX (core, RabbitMQ, the worker, back);
- in-process: the worker's own analysis on as many processes as the worker has
  (`AI_TEXT_PROCESSES`), called from an event loop as its handler calls it
  (`services.ai.ceiling`, run as a command: the tools never import a service).

It prints rates, p50 and p99 and the ratio of the two (target: RPC >= 0.7 of in-process), then
tears everything down. Not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop

from devstack import ROOT, down, up
from devstack.scratch import remove_scratch
from scripts.bench import Result, _median, rate, throwaway_stack
from scripts.checkouts import new_customer

SECONDS = float(os.environ.get("BENCH_AI_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_AI_ROUNDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_AI_CONCURRENCY", "8"))
TARGET = 0.7
# A product review of about 500 characters, five sentences (the summary picks three).
REVIEW = (
    "I bought this cast iron teapot for my mother and she has used it every day since. It keeps "
    "the tea hot for well over an hour, and the enamel inside cleans easily. The handle gets a "
    "little warm, so a cloth helps. Shipping took four days and the box was packed with care. "
    "For the price, I would happily buy it again as a gift for friends who love good tea."
)


async def measure(
    name: str, call: Callable[[], Awaitable[None]], seconds: float, concurrency: int
) -> Result:
    """`concurrency` callers each calling `call` in a loop for `seconds`."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return rate(name, len(latencies), time.monotonic() - started, latencies)


async def through_nginx(base: str, seconds: float, concurrency: int) -> Result:
    """Text analyses through NGINX, core and the worker."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        auth = await new_customer(http, base)

        async def call() -> None:
            async with http.post(
                f"{base}/api/ai/text/analyze", json={"text": REVIEW}, headers=auth
            ) as response:
                if response.status != 200:
                    raise SystemExit(f"analysis failed: {response.status} {await response.text()}")
                await response.read()

        return await measure("text analysis via nginx (RPC)", call, seconds, concurrency)


def in_process(seconds: float, concurrency: int) -> tuple[Result, int]:
    """The worker's own analysis on its text processes (models loaded before the clock starts),
    and how many there are."""
    argv = [sys.executable, "-m", "services.ai.ceiling", "--text", REVIEW]
    out = subprocess.run(
        [*argv, "--seconds", str(seconds), "--concurrency", str(concurrency)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    latencies = found["latencies"]
    result = rate("text analysis in-process", len(latencies), found["seconds"], latencies)
    return result, int(found["processes"])


def main() -> None:
    """Run both measurements in interleaved rounds and print the table and the ratio."""
    run = uuid.uuid4().hex[:8]
    config = throwaway_stack(run, ROOT / "var" / "bench" / "ai", ai_instances=1)
    # One account from one address: lift the per-account limit too (the stack's per-address
    # limits are lifted by its settings).
    os.environ["AI_RATE_LIMIT"] = "100000000/minute"
    base = f"http://127.0.0.1:{config.nginx_port}"
    runs: dict[str, list[Result]] = {"rpc": [], "local": []}
    uvloop.install()
    try:
        up(config)
        asyncio.run(through_nginx(base, 2, CONCURRENCY))  # warm-up
        for _ in range(ROUNDS):
            runs["rpc"].append(asyncio.run(through_nginx(base, SECONDS, CONCURRENCY)))
            local, processes = in_process(SECONDS, CONCURRENCY)
            runs["local"].append(local)
    finally:
        down(config)
        remove_scratch(config)

    rpc, local = _median(runs["rpc"]), _median(runs["local"])
    print(
        f"\nmedian of {ROUNDS} interleaved runs of {SECONDS:g} s, {CONCURRENCY} callers, "
        f"{processes} text process(es), a {len(REVIEW)}-character review, "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'measurement':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for result in (rpc, local):
        print(f"{result.name:<34}{result.rps:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}")
    ratio = rpc.rps / local.rps
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"{'RPC via nginx / in-process':<40}{ratio:>6.2f}   target >= {TARGET}  ({verdict})")
    print(f"{'p99 RPC / p99 in-process':<40}{rpc.p99_ms / local.p99_ms:>6.2f}")


if __name__ == "__main__":
    main()
