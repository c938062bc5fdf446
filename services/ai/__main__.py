"""Run the AI worker: `python -m services.ai [serve|check|migrate|declare|permissions]`."""

from __future__ import annotations

from chassis.main import Service, main
from services.ai.app import MIGRATIONS, create_app
from services.ai.handlers import EVENT_QUEUE
from services.ai.roles import BROKER
from services.ai.settings import AiSettings

if __name__ == "__main__":
    main(Service(__doc__ or "", AiSettings, create_app, MIGRATIONS, BROKER, queues=(EVENT_QUEUE,)))
