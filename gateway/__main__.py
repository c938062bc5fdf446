"""Run the realtime gateway: `python -m gateway [serve|check|declare|permissions]`."""

from __future__ import annotations

from chassis.main import Service, main
from gateway.app import create_app
from gateway.handlers import JOURNAL_QUEUE
from gateway.roles import BROKER
from gateway.settings import GatewaySettings

if __name__ == "__main__":
    main(Service(__doc__ or "", GatewaySettings, create_app, None, BROKER, queues=(JOURNAL_QUEUE,)))
