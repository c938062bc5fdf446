"""Relais under load: `make loadtest` (headless, distributed, a step load with SLO gates) or
`make loadtest UI=1` (Locust's web UI). The journeys are in `journeys.py`, the shapes in
`shapes.py`, the gates in `gates.yml`."""

from __future__ import annotations

from gates import _judge  # noqa: F401 - registers the gates
from journeys import AiUser, Browser, Buyer, Listener
from shapes import SelectedShape

__all__ = ["AiUser", "Browser", "Buyer", "Listener", "SelectedShape"]
