"""Speech to text with pocketsphinx (its wheel carries an English acoustic model, language model
and dictionary), in processes of their own: decoding holds the GIL for seconds, which would
stall the worker's event loop (heartbeats, other RPCs) if it ran in a thread.

The pool's processes are spawned (a fresh interpreter: they do not inherit the worker's loaded
models) and die with the worker, even when it is killed: an orphaned recogniser would hold its
memory until the machine restarts.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from pocketsphinx import Decoder

# The acoustic model's rate: the recording is resampled to it first.
RATE = 16_000

_decoder: Decoder | None = None


# prctl(2): the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def start_recognizer(worker: int | None = None) -> None:
    """The pool's initializer: die with `worker` (the process that started the pool), then
    load the model."""
    global _decoder  # one decoder per pool process
    if worker is not None and sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != worker:  # it died before the line above
            os._exit(1)
    _decoder = Decoder(samprate=RATE, loglevel="FATAL")


def transcribe(pcm: bytes) -> str:
    """The words heard in `pcm` (16-bit mono at `RATE`), lower case; "" if none."""
    if _decoder is None:
        start_recognizer()
    assert _decoder is not None
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hypothesis = _decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""
