"""Run the payments worker: `python -m services.payments`."""

from __future__ import annotations

import argparse

from chassis.http import serve
from services.payments.app import create_app
from services.payments.settings import PaymentsSettings


def main() -> None:
    """Serve the worker with the environment's settings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="validate the settings and exit")
    args = parser.parse_args()
    settings = PaymentsSettings()
    if not args.check:
        serve(create_app, settings)


if __name__ == "__main__":
    main()
