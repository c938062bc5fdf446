"""Load every model the worker uses, once, from the files installed with it: `python -m
services.ai.models`. The AI image runs it at build time, with the hub's clients told to stay
offline, so an image whose models are not inside fails to build instead of fetching at start."""

from __future__ import annotations

import time

from services.ai import embeddings, speech, text
from services.ai.settings import AiSettings


def main() -> None:
    """Load the embedding, text and speech models; print what each took."""
    settings = AiSettings()
    started = time.perf_counter()
    model = embeddings.load_model(1)
    vectors = embeddings.encode(model, ["a red wool scarf"])
    print(f"embeddings: {vectors.shape[1]} dimensions, {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    text.start_text_models(settings.ai_languages)
    analysis = text.analyze("A lovely warm scarf. It arrived quickly and I love it.")
    print(f"text: {analysis.language}, {analysis.sentiment.label}, ", end="")
    print(f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    speech.start_recognizer()
    speech.transcribe(b"\0\0" * speech.RATE)
    print(f"speech: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
