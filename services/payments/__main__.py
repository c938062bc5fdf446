"""Run the payments worker: `python -m services.payments`."""

from __future__ import annotations

from chassis.app import serve
from services.payments.app import create_app
from services.payments.settings import PaymentsSettings


def main() -> None:
    """Serve the worker with the environment's settings."""
    settings = PaymentsSettings()
    serve(create_app, settings)


if __name__ == "__main__":
    main()
