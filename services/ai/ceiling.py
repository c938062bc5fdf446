"""`python -m services.ai.ceiling`: the text analysis called in-process, as the worker's handler
calls it (its threads, from an event loop), for `make bench` to set beside the RPC path.

Prints one JSON object: the number of analyses, the seconds they took and each one's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

from services.ai.settings import AiSettings
from services.ai.text import TextModels, load_text_models


async def analyses(
    models: TextModels, text: str, threads: int, seconds: float, concurrency: int
) -> dict[str, object]:
    """`concurrency` callers analysing `text` on `threads` threads for `seconds`."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    with ThreadPoolExecutor(threads) as work:
        deadline = time.monotonic() + seconds

        async def caller() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await loop.run_in_executor(work, models.analyze, text)
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return {"seconds": time.monotonic() - started, "latencies": latencies}


def main() -> None:
    """Load the models (not timed), then measure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text", required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    settings = AiSettings()
    models = load_text_models(tuple(settings.ai_languages))
    models.analyze(args.text)  # warm
    result = asyncio.run(
        analyses(models, args.text, settings.ai_threads, args.seconds, args.concurrency)
    )
    print(json.dumps({**result, "threads": settings.ai_threads}))


if __name__ == "__main__":
    main()
