"""`python -m devstack COMMAND`: the native stack (see the package docstring).

up              bring the stack up (a running stack keeps the configuration it started with)
down            stop everything `up` started
restart         down, then up with the caller's configuration
status          each process, datastore and readiness check; non-zero if any is down
logs            the last lines of the logs (`--service`, `--lines`, `--follow`)
alerts          what fires now, and the last notifications of the local receiver
admin           create or promote an admin (password: ADMIN_PASSWORD or a prompt)
seed            an admin and a demo catalog, once
mail            the development outbox's last messages (`--to`, `--last`)
sandbox-settle  settle a waiting sandbox payment by the sandbox's signed webhook
sandbox-outage  every sandbox charge fails for --seconds (0 ends it): a provider outage
ai-worker       one more AI worker in the foreground, sharing the stack's queues (`--number`)
openapi         the API's one document (the services' own, merged) on stdout
archiving       pgBackRest's stanza and PostgreSQL's WAL archiving into it (`up` does it too)
backup          a base backup (`--type` full, diff or incr) and a dump of each schema
backups         the backups, the span they restore to, their dumps (`--verify`: checksums)
restore-check   the newest backup restored on `--port` (to `--target`), the data checked in it
remove-replica  remove a stopped stack's replica: its folder and its slot (`make clean`)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from devstack import backups
from devstack.alerts import show_alerts
from devstack.commands import (
    admin,
    down,
    extra_ai_worker,
    restart,
    running_config,
    sandbox_control,
    status,
    up,
)
from devstack.mail import show_mail
from devstack.nginx import api_document
from devstack.processes import follow_logs, show_logs
from devstack.replica import remove_replica
from devstack.seed import seed
from devstack.settings import StackSettings

COMMANDS = [
    "up",
    "down",
    "restart",
    "status",
    "logs",
    "alerts",
    "admin",
    "seed",
    "mail",
    "sandbox-settle",
    "sandbox-outage",
    "ai-worker",
    "openapi",
    "archiving",
    "backup",
    "backups",
    "restore-check",
    "remove-replica",
]


def _backup(config: StackSettings, args: argparse.Namespace) -> int:
    report = backups.backup(config, args.type)
    print(
        f"backup {report.label} ({report.kind}): base backup {report.physical_seconds} s, "
        f"{report.physical_bytes} bytes ({report.repository_bytes} stored); dumps of "
        f"{', '.join(report.schemas)} {report.dump_seconds} s, {report.dump_bytes} bytes"
    )
    return 0


def _archiving(config: StackSettings, args: argparse.Namespace) -> int:
    backups.setup_archiving(config)
    return 0


def _backups(config: StackSettings, args: argparse.Namespace) -> int:
    return backups.show_backups(config, verify=args.verify)


def _restore_check(config: StackSettings, args: argparse.Namespace) -> int:
    return backups.restore_check(config, port=args.port, target=args.target)


def _remove_replica(config: StackSettings, args: argparse.Namespace) -> int:
    remove_replica(config)
    return 0


BACKUP_COMMANDS: dict[str, Callable[[StackSettings, argparse.Namespace], int]] = {
    "remove-replica": _remove_replica,
    "archiving": _archiving,
    "backup": _backup,
    "backups": _backups,
    "restore-check": _restore_check,
}


def main() -> None:
    """Dispatch a stack command."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--email", help="the account `admin` or `seed` creates or promotes")
    parser.add_argument("--promote", action="store_true", help="`admin`: promote a customer")
    parser.add_argument(
        "--reset-password", action="store_true", help="`admin`: set an existing account's password"
    )
    parser.add_argument("--to", help="`mail`: only the messages to this address")
    parser.add_argument("--last", type=int, default=10, help="`mail`: how many messages")
    parser.add_argument("--lines", type=int, default=50, help="`logs`: lines per file")
    parser.add_argument("--service", help="`logs`: only this program's (core, core-1, nginx…)")
    parser.add_argument("--follow", action="store_true", help="`logs`: keep following")
    parser.add_argument("--payment", help="`sandbox-settle`: the payment's id")
    parser.add_argument("--outcome", choices=["succeeded", "failed"], help="`sandbox-settle`")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="`sandbox-outage`: how long (0 ends it)"
    )
    parser.add_argument(
        "--number", type=int, default=2, help="`ai-worker`: which worker (2 after the stack's one)"
    )
    parser.add_argument("--type", default="full", choices=["full", "diff", "incr"])
    parser.add_argument("--verify", action="store_true", help="`backups`: check every checksum")
    parser.add_argument("--target", help="`restore-check`: the time to recover to (with a zone)")
    parser.add_argument("--port", type=int, default=5499, help="`restore-check`: its port")
    args = parser.parse_args()
    if args.command == "openapi":
        print(api_document())
        return
    requested = StackSettings()
    if args.command == "up":
        up(requested)
        return
    if args.command == "restart":
        restart(requested)
        return
    config = running_config(requested)
    if args.command in BACKUP_COMMANDS:
        sys.exit(BACKUP_COMMANDS[args.command](config, args))
    if args.command == "down":
        down(requested)
    elif args.command == "admin":
        sys.exit(admin(config, args.email, promote=args.promote, reset=args.reset_password))
    elif args.command == "mail":
        sys.exit(show_mail(config, args.to, args.last))
    elif args.command == "seed":
        sys.exit(seed(config, args.email))
    elif args.command == "sandbox-settle":
        sys.exit(sandbox_control(config, "--payment", args.payment, "--outcome", args.outcome))
    elif args.command == "sandbox-outage":
        sys.exit(sandbox_control(config, "--outage", str(args.seconds)))
    elif args.command == "ai-worker":
        extra_ai_worker(config, args.number)
    elif args.command == "status":
        sys.exit(0 if status(config) else 1)
    elif args.command == "alerts":
        show_alerts(config)
    elif args.follow:
        follow_logs(config, args.service)
    elif not show_logs(config, args.lines, args.service):
        sys.exit(f"no log file{f' of {args.service}' if args.service else ''} in {config.log_dir}")


if __name__ == "__main__":
    main()
