"""`python -m services.ai.ceiling`: the text analysis called in-process, as the worker's handler
calls it (its text processes, from an event loop), for `make bench` to set beside the RPC path.

Prints one JSON object: the number of analyses, the seconds they took and each one's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from services.ai.pools import ModelPool
from services.ai.settings import AiSettings
from services.ai.text import analyze, start_text_models


async def analyses(
    settings: AiSettings, sample: str, seconds: float, concurrency: int
) -> dict[str, object]:
    """`concurrency` callers analysing `sample` on the worker's text processes for `seconds`
    (the processes are started and warm before the clock starts)."""
    pool = ModelPool("text", settings.ai_text_processes, start_text_models, settings.ai_languages)
    latencies: list[float] = []
    try:
        await pool.warm_up(analyze, sample)
        deadline = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await pool.run(analyze, sample)
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    return {"seconds": elapsed, "latencies": latencies}


def main() -> None:
    """Measure, and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text", required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    settings = AiSettings()
    result = asyncio.run(analyses(settings, args.text, args.seconds, args.concurrency))
    print(json.dumps({**result, "processes": settings.ai_text_processes}))


if __name__ == "__main__":
    main()
