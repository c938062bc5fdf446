"""Audio measurement: soundfile (libsndfile, in its wheel) decodes WAV, FLAC and OGG; numpy
measures the levels and the silence; scipy resamples to the speech model's rate."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
from numpy.typing import NDArray

from chassis.errors import Unprocessable, UnsupportedMediaType
from contracts import MAX_AUDIO_SECONDS, MAX_MEDIA
from services.ai.speech import RATE

FORMATS = frozenset({"WAV", "FLAC", "OGG"})
# Levels are dB relative to full scale; digital silence is -inf, reported as this floor.
FLOOR_DBFS = -120.0
# Silence: 20 ms frames whose RMS level is below -50 dBFS.
FRAME_SECONDS = 0.02
SILENCE_DBFS = -50.0
# Decoded samples (all channels) a recording may have: 60 s of 96 kHz stereo. A small FLAC
# file could otherwise decode to gigabytes.
MAX_SAMPLES = int(MAX_AUDIO_SECONDS * 96_000 * 2)


@dataclass(frozen=True)
class Signal:
    """A decoded recording's measures, and its speech as 16-bit mono PCM at `RATE`."""

    format: str
    duration_s: float
    sample_rate: int
    channels: int
    loudness_dbfs: float
    peak_dbfs: float
    silence_ratio: float
    pcm: bytes

    @property
    def silent(self) -> bool:
        """Nothing above the silence level: nothing to transcribe (the recogniser would make
        a word up)."""
        return self.silence_ratio >= 1.0


def dbfs(level: float) -> float:
    """A linear level (1.0 = full scale) in dBFS, floored."""
    return round(max(20 * float(np.log10(level)), FLOOR_DBFS), 2) if level > 0 else FLOOR_DBFS


def measure(data: bytes) -> Signal:
    """Decode and measure `data` (CPU-bound: run it off the loop): 415 if it is not WAV, FLAC
    or OGG audio, 422 if it is longer than `MAX_AUDIO_SECONDS`."""
    if truncated_wav(data):
        raise UnsupportedMediaType("the WAV file is truncated: it is shorter than its header says")
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedMediaType("the file is not audio libsndfile can decode") from exc
    if info.format not in FORMATS:
        raise UnsupportedMediaType(f"{info.format} audio: send WAV, FLAC or OGG")
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if duration > MAX_AUDIO_SECONDS:
        raise Unprocessable(
            f"the recording lasts {duration:.1f} s, more than {MAX_AUDIO_SECONDS:g} s"
        )
    if info.frames * info.channels > MAX_SAMPLES:
        raise Unprocessable(f"{info.samplerate} Hz x {info.channels} channels is too many samples")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, ValueError) as exc:
        raise UnsupportedMediaType(f"the audio cannot be decoded: {exc}") from exc
    if samples.shape[0] == 0:
        raise Unprocessable("the recording holds no sound")
    mono: NDArray[np.float32] = samples.mean(axis=1)
    return Signal(
        format=info.format,
        duration_s=round(samples.shape[0] / rate, 3),
        sample_rate=int(rate),
        channels=int(samples.shape[1]),
        loudness_dbfs=dbfs(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))),
        peak_dbfs=dbfs(float(np.max(np.abs(samples)))),
        silence_ratio=silence_ratio(mono, rate),
        pcm=speech_pcm(mono, rate),
    )


def truncated_wav(data: bytes) -> bool:
    """Whether `data` is a RIFF file shorter than its header's size (libsndfile would decode
    what is there without a word). A size past what the route takes is a streamed file's
    placeholder (espeak-ng's `--stdout` writes 0x7ffff024), not a claim."""
    if data[:4] != b"RIFF" or len(data) < 8:
        return False
    size = int.from_bytes(data[4:8], "little") + 8
    return len(data) < size <= MAX_MEDIA


def silence_ratio(mono: NDArray[np.float32], rate: int) -> float:
    """The share of 20 ms frames quieter than `SILENCE_DBFS`."""
    size = max(int(rate * FRAME_SECONDS), 1)
    count = max(len(mono) // size, 1)
    # whole frames (the tail shorter than one is left out); a recording shorter than a frame is one
    frames = mono[: count * size].reshape(count, size) if len(mono) >= size else mono[None, :]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    quiet = rms < 10 ** (SILENCE_DBFS / 20)
    return round(float(np.mean(quiet)), 4)


def speech_pcm(mono: NDArray[np.float32], rate: int) -> bytes:
    """`mono` resampled to the speech model's rate, as 16-bit little-endian PCM."""
    from scipy.signal import resample_poly  # 1 s to import: the worker imports it at start

    resampled = resample_poly(mono, RATE, rate) if rate != RATE else mono
    return (np.clip(resampled, -1.0, 1.0) * 32767).astype("<i2").tobytes()
