"""Speech to text with pocketsphinx (its wheel carries an English acoustic model, language model
and dictionary), in a pool process (`services.ai.pools`): decoding holds the GIL for seconds.
"""

from __future__ import annotations

from pocketsphinx import Decoder

# The acoustic model's rate: the recording is resampled to it first.
RATE = 16_000

_decoder: Decoder | None = None


def start_recognizer() -> None:
    """Load the model into this process (the pool's initializer)."""
    global _decoder  # one decoder per pool process
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
