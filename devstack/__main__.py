"""`python -m devstack up|down|status|logs|admin`: the native stack (see the package docstring)."""

from __future__ import annotations

import argparse
import sys

from devstack.commands import admin, down, status, up
from devstack.processes import follow_logs, show_logs
from devstack.settings import StackSettings


def main() -> None:
    """Dispatch a stack command."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "logs", "admin"])
    parser.add_argument("--email", help="the account `admin` creates or promotes")
    parser.add_argument("--promote", action="store_true", help="`admin`: promote a customer")
    parser.add_argument("--lines", type=int, default=50, help="lines per file for `logs`")
    parser.add_argument("--follow", action="store_true", help="`logs`: keep following")
    args = parser.parse_args()
    config = StackSettings()
    if args.command == "up":
        up(config)
    elif args.command == "down":
        down(config)
    elif args.command == "admin":
        sys.exit(admin(config, args.email, promote=args.promote))
    elif args.command == "status":
        sys.exit(0 if status(config) else 1)
    elif args.follow:
        follow_logs(config)
    else:
        show_logs(config, args.lines)


if __name__ == "__main__":
    main()
