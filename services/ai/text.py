"""Text analysis with models shipped in their wheels: lingua (language), VADER (sentiment),
YAKE (keywords); the summary is extractive (the sentences that hold the most keywords)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import yake
from lingua import IsoCode639_1, LanguageDetectorBuilder
from segtok.segmenter import split_multi
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from contracts import Sentiment, TextAnalysis

# VADER's own thresholds for its compound score.
NEUTRAL_BAND = 0.05
KEYWORDS = 8
SUMMARY_SENTENCES = 3
# YAKE's stop-word lists, by language (others fall back to English).
YAKE_LANGUAGES = {"en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da", "fi", "cs", "ro"}
_WORD = re.compile(r"\w+", re.UNICODE)


class TextModels:
    """The loaded models (loading takes seconds: once per process, at start)."""

    def __init__(self, languages: Sequence[str]) -> None:
        codes = [IsoCode639_1.from_str(code) for code in languages]
        self.detector = (
            LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
            .with_preloaded_language_models()
            .with_minimum_relative_distance(0.1)
            .build()
        )
        self.sentiment = SentimentIntensityAnalyzer()
        self.extractors = {
            code: yake.KeywordExtractor(lan=code, n=2, top=KEYWORDS, dedupLim=0.7)
            for code in YAKE_LANGUAGES
        }

    def language(self, text: str) -> str | None:
        """The text's language (ISO 639-1), or None if none is reliable."""
        found = self.detector.detect_language_of(text)
        return None if found is None else found.iso_code_639_1.name.lower()

    def analyze(self, text: str) -> TextAnalysis:
        """Language, sentiment, keywords and summary of `text` (CPU-bound: run it off the loop)."""
        language = self.language(text)
        score = float(self.sentiment.polarity_scores(text)["compound"])
        label = (
            "positive"
            if score >= NEUTRAL_BAND
            else "negative"
            if score <= -NEUTRAL_BAND
            else "neutral"
        )
        extractor = self.extractors.get(language or "en", self.extractors["en"])
        keywords = [phrase for phrase, _ in extractor.extract_keywords(text)]
        return TextAnalysis(
            language=language,
            sentiment=Sentiment(label=label, score=round(score, 4)),
            keywords=keywords,
            summary=summarize(text, keywords),
        )


# The models of a pool process (`services.ai.pools`): loaded by its initializer.
_models: TextModels | None = None


def start_text_models(languages: Sequence[str]) -> None:
    """Load the text models into this process (the pool's initializer)."""
    global _models  # one set per pool process
    _models = TextModels(languages)


def analyze(text: str) -> TextAnalysis:
    """`text` analysed by this process' models."""
    if _models is None:
        raise RuntimeError("start_text_models() was not called in this process")
    return _models.analyze(text)


def summarize(text: str, keywords: Sequence[str], count: int = SUMMARY_SENTENCES) -> str:
    """The `count` sentences of `text` that hold the most keyword words, in the text's order."""
    sentences = [s.strip() for s in split_multi(text) if s.strip()]
    if len(sentences) <= count:
        return " ".join(sentences)
    vocabulary = {word.lower() for phrase in keywords for word in _WORD.findall(phrase)}

    def weight(sentence: str) -> float:
        words = [word.lower() for word in _WORD.findall(sentence)]
        hits: int = sum(word in vocabulary for word in words)
        return hits / math.sqrt(1 + len(words))

    best = sorted(range(len(sentences)), key=lambda i: weight(sentences[i]), reverse=True)
    return " ".join(sentences[i] for i in sorted(best[:count]))
