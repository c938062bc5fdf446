"""The speech recogniser's process pool: started with the worker, warmed up before the worker
is ready, and replaced if one of its processes dies (the pool is broken for good then)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.ai import speech

log = logging.getLogger("relais.ai")


class Recognizer:
    """Transcribes in `processes` processes of their own, one recording each at a time."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # Spawned: the pool's processes do not inherit the worker's loaded models.
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=speech.start_recognizer,
            initargs=(os.getpid(),),
        )

    async def warm_up(self) -> None:
        """Start every process and load its model."""
        loop = asyncio.get_running_loop()
        silence = bytes(2 * speech.RATE // 10)
        await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, speech.transcribe, silence)
                for _ in range(self.processes)
            )
        )

    async def transcribe(self, pcm: bytes) -> str:
        """The words in `pcm`; a pool broken by a dead process is replaced and tried once more."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, speech.transcribe, pcm)
        except BrokenProcessPool:
            log.warning("a speech process died: its pool is replaced")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, speech.transcribe, pcm)

    def close(self) -> None:
        """Stop the processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)
