"""Run one core instance: `python -m services.core [--port N] [--metrics-port N]`."""

from __future__ import annotations

import argparse

from chassis.http import serve
from services.core.app import create_app
from services.core.settings import CoreSettings


def main() -> None:
    """Parse arguments over the environment's settings and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, help="HTTP port (HTTP_PORT)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (METRICS_PORT)")
    parser.add_argument("--check", action="store_true", help="validate the settings and exit")
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in {"http_port": args.port, "metrics_port": args.metrics_port}.items()
        if value is not None
    }
    settings = CoreSettings(**overrides)
    if not args.check:
        serve(create_app, settings)


if __name__ == "__main__":
    main()
