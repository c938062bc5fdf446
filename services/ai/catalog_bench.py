"""The catalog intelligence's benchmark, in the worker's own process (`python -m
services.ai.catalog_bench`, run by `make bench`): what its parts cost on this machine.

- Embeddings per second through the worker's `Embedder`, with micro-batching (as many callers
  as `max_batch`, each embedding one text at a time) against one text at a time (one caller,
  no window), interleaved rounds; the ratio (target >= 3), for search queries (what the RPCs
  embed one at a time) and for the longer product texts.
- Search at 10,000 products: p50 and p99 of a query's embedding plus the exact search of the
  index, and of the index alone.
- Training the co-purchase model on 100,000 orders over 10,000 products.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid

from chassis.telemetry import Metrics
from services.ai import embeddings
from services.ai.catalog.index import Entry, VectorIndex
from services.ai.embeddings import Embedder, EmbeddingMetrics
from services.ai.recommendations.model import train

ROUNDS = int(os.environ.get("BENCH_CATALOG_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_CATALOG_SECONDS", "4"))
PRODUCTS = 10_000
ORDERS = 100_000
WORDS = [
    "waterproof",
    "hiking",
    "boots",
    "leather",
    "kettle",
    "teapot",
    "cast",
    "iron",
    "laptop",
    "light",
    "battery",
    "linen",
    "dress",
    "summer",
    "tent",
    "camping",
    "stove",
    "mug",
    "ceramic",
    "espresso",
    "grinder",
    "backpack",
    "rain",
    "jacket",
    "wool",
    "socks",
    "running",
    "shoes",
    "trail",
    "lamp",
    "desk",
    "chair",
    "notebook",
    "pen",
    "ink",
    "pencil",
    "sketch",
    "watercolour",
    "brush",
]


def texts(count: int, seed: int, words: tuple[int, int] = (8, 24)) -> list[str]:
    """Texts of `words` words (8 to 24: a product's name, category and description; 3 to 10: a
    search query)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(*words))) for _ in range(count)]


QUERIES, PRODUCTS_TEXTS = (3, 10), (8, 24)


async def embeddings_per_second(
    embedder: Embedder,
    callers: int,
    window: float,
    seconds: float,
    seed: int,
    words: tuple[int, int],
) -> float:
    """Texts embedded per second by `callers` callers, each one text at a time."""
    embedder.window = window
    pool = texts(4096, seed, words)
    done = 0
    deadline = time.monotonic() + seconds

    async def caller(offset: int) -> None:
        nonlocal done
        index = offset
        while time.monotonic() < deadline:
            await embedder.embed(pool[index % len(pool)])
            index += callers
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return done / (time.monotonic() - started)


def percentiles(samples: list[float]) -> str:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def main() -> None:
    model = embeddings.load_model(threads=2)
    embedder = Embedder(model, EmbeddingMetrics(Metrics("bench")), window=0.004, max_batch=64)
    runner = asyncio.create_task(embedder.run())
    await embedder.embed_many(["warm up"] * 64)

    print(f"Embeddings (all-MiniLM-L6-v2, CPU), {ROUNDS} interleaved rounds of {SECONDS:g} s")
    for kind, words in (("search queries", QUERIES), ("product texts", PRODUCTS_TEXTS)):
        batched, single = [], []
        for round_ in range(ROUNDS):
            single.append(await embeddings_per_second(embedder, 1, 0.0, SECONDS, round_, words))
            batched.append(await embeddings_per_second(embedder, 64, 0.004, SECONDS, round_, words))
        ratio = statistics.median(batched) / statistics.median(single)
        print(
            f"  {kind} ({words[0]}-{words[1]} words): one at a time "
            f"{statistics.median(single):.0f}/s, micro-batched {statistics.median(batched):.0f}/s "
            f"(rounds {', '.join(f'{b / o:.2f}' for b, o in zip(batched, single, strict=True))}):"
            f" ratio {ratio:.2f} (target >= 3)"
        )

    print(f"Search over {PRODUCTS:,} products (exact, in memory)")
    vectors = await embedder.embed_many(texts(PRODUCTS, 99))
    index = VectorIndex()
    rng = random.Random(1)
    categories = ["outdoor", "kitchen", "computers", "clothing", "office"]
    ids = [uuid.UUID(int=i + 1) for i in range(PRODUCTS)]
    for product_id, vector in zip(ids, vectors, strict=True):
        index.upsert(
            Entry(product_id, "p", rng.choice(categories), rng.randint(100, 50_000), vector)
        )
    queries = texts(300, 5, QUERIES)
    whole, alone = [], []
    for query in queries:
        started = time.perf_counter()
        vector = await embedder.embed(query)
        searched = time.perf_counter()
        index.search(vector, 10)
        ended = time.perf_counter()
        whole.append(ended - started)
        alone.append(ended - searched)
    filtered = []
    for query in queries[:100]:
        vector = await embedder.embed(query)
        started = time.perf_counter()
        index.search(vector, 10, category="outdoor", max_price=20_000)
        filtered.append(time.perf_counter() - started)
    print(f"  query embedded and searched: {percentiles(whole)}")
    print(f"  the index alone: {percentiles(alone)}; with category and price filters: "
          f"{percentiles(filtered)}")  # fmt: skip

    print(f"Co-purchase training on {ORDERS:,} orders over {PRODUCTS:,} products")
    rng = random.Random(3)
    orders = [rng.sample(range(PRODUCTS), rng.choice((1, 2, 2, 3, 4))) for _ in range(ORDERS)]
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        learned = train(orders)
        times.append(time.perf_counter() - started)
    pairs = sum(len(found) for found in learned.values())
    print(
        f"  {statistics.median(times):.2f} s per training (median of {ROUNDS}; "
        f"{len(learned):,} products, {pairs:,} partner pairs kept)"
    )
    runner.cancel()
    embedder.close()


if __name__ == "__main__":
    asyncio.run(main())
