"""Run the AI worker: `python -m services.ai [serve|check|permissions]`."""

from __future__ import annotations

from chassis.main import Service, main
from services.ai.app import create_app
from services.ai.roles import BROKER
from services.ai.settings import AiSettings

if __name__ == "__main__":
    main(Service(__doc__ or "", AiSettings, create_app, None, BROKER))
