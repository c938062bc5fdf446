"""Processes of the worker's own for its CPU-bound models (text analysis, speech recognition).

The worker's event loop speaks AMQP and HTTP; the models run in spawned processes (a fresh
interpreter each: they do not inherit the loop's process), so that the Python of the analysis
and the Python of the messaging do not take turns on one GIL, and a long transcription cannot
stall heartbeats. Each process loads its model once, at start; the worker is ready when every
process has. A process dies with the worker, even when the worker is killed (an orphan would
hold its memory until the machine restarts), and a pool broken by a dead process is replaced.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger("relais.ai")
T = TypeVar("T")
# prctl(2): the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def _start(worker: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """A pool process' first step: die with `worker`, then load its model."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != worker:  # it died before the line above
            os._exit(1)
    initializer(*initargs)


class ModelPool:
    """`processes` processes, each with the model `initializer(*initargs)` loads."""

    def __init__(
        self, name: str, processes: int, initializer: Callable[..., None], *initargs: Any
    ) -> None:
        self.name = name
        self.processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(os.getpid(), self._initializer, self._initargs),
        )

    async def warm_up(self, call: Callable[..., object], argument: Any) -> None:
        """Start every process (each loads its model) and make one call in each."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, call, argument) for _ in range(self.processes))
        )

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` in one of the processes; a pool broken by a dead process is replaced
        and the call tried once more."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, call, *args)
        except BrokenProcessPool:
            log.warning("a %s process died: its pool is replaced", self.name)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, call, *args)

    def close(self) -> None:
        """Stop the processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)
