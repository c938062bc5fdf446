"""The AI worker's own metrics, in the process's registry beside the chassis' RED and RPC ones."""

from __future__ import annotations

from prometheus_client import Gauge

from chassis.telemetry import Metrics


class AiMetrics:
    """How long each model took to load at start."""

    def __init__(self, metrics: Metrics) -> None:
        self.service = metrics.service
        self.load_seconds = Gauge(
            "relais_ai_model_load_seconds",
            "Seconds the worker took to load a model at start.",
            ["service", "model"],
            registry=metrics.registry,
        )

        self._loaded: dict[str, float] = {}

    def loaded(self, model: str, seconds: float) -> None:
        """Record a model's load time."""
        self.load_seconds.labels(self.service, model).set(seconds)
        self._loaded[model] = seconds

    def summary(self) -> str:
        """The load times recorded, for the log."""
        return ", ".join(f"{model} in {seconds:.1f} s" for model, seconds in self._loaded.items())
