"""Media the AI tests make themselves: images with Pillow, speech with espeak-ng (Debian)."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile
from PIL import Image

SPOKEN = "I really love this wonderful teapot."


def image_file(image: Image.Image, image_format: str = "PNG") -> bytes:
    """`image` encoded as `image_format`."""
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def red_png() -> bytes:
    """A small red PNG."""
    return image_file(Image.new("RGB", (64, 48), (255, 0, 0)))


def noisy_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    rng = np.random.default_rng(side)
    return image_file(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))


def spoken(text: str = SPOKEN, audio_format: str = "WAV") -> bytes:
    """`text` read by espeak-ng (American English), as `audio_format`. Written to a file, so
    that the WAV header has the real sizes (on a pipe it has placeholders)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spoken.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(path), text],
            capture_output=True,
            check=True,
            timeout=60,
        )
        wav = path.read_bytes()
    if audio_format == "WAV":
        return wav
    samples, rate = soundfile.read(io.BytesIO(wav))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=audio_format)
    return buffer.getvalue()


def silence(seconds: float, rate: int = 8000) -> bytes:
    """A silent WAV of `seconds`."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), dtype=np.int16), rate, format="WAV")
    return buffer.getvalue()


def form(field: str, data: bytes, filename: str = "file") -> aiohttp.FormData:
    """A multipart form carrying `data` in `field`."""
    body = aiohttp.FormData()
    # A file object: aiohttp warns that big raw bytes would block the loop.
    body.add_field(
        field, io.BytesIO(data), filename=filename, content_type="application/octet-stream"
    )
    return body


def words_heard(transcript: str, text: str = SPOKEN) -> float:
    """The share of `text`'s words the transcript holds."""
    said = [word.strip(".,!?").lower() for word in text.split()]
    heard = set(transcript.lower().split())
    return sum(word in heard for word in said) / len(said)


def problem_of(response: Any) -> None:
    """Assert that `response` is problem+json."""
    assert response.content_type == "application/problem+json", response.content_type
