"""The process entry point of every service: `python -m services.<name> [command]`.

    serve (default)  run the service with the environment's settings
    check            validate the settings and exit (refused as the service would refuse them)
    migrate          bring the service's schema up to date as the DSN's role; `--grant ROLE`
                     then gives the service's runtime role its grants
    declare          declare the queues the service consumes (before its first start, so that
                     what is published for it meanwhile waits in them)
    permissions      print the service's broker permissions as JSON (for whoever makes its user)
    openapi          print the OpenAPI document of the service's HTTP operations

The dev stack, the containers and Ansible run these commands; none of them imports a service.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

import asyncpg
from aiohttp import web

from chassis.data import Conn
from chassis.http import serve
from chassis.messaging import BrokerPermissions, WorkQueue, declare_work_queues
from chassis.settings import ServiceSettings

__all__ = ["Grant", "Service", "main"]

S = TypeVar("S", bound=ServiceSettings)
# Gives a role (the second argument) its grants on a schema (the third).
Grant = Callable[[Conn, str, str], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Service(Generic[S]):
    """What a service's `__main__` tells the entry point."""

    description: str
    settings: Callable[..., S]
    create_app: Callable[[S], web.Application]
    migrations: Path | None  # None: the service owns no schema
    broker: BrokerPermissions
    grant: Grant | None = None
    document: Callable[[], dict[str, object]] | None = None
    queues: tuple[WorkQueue, ...] = ()


async def _grant(database_url: str, grant: Grant, role: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await grant(conn, role, schema)
    finally:
        await conn.close()


def main(service: Service[S]) -> None:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(description=service.description)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "check", "migrate", "declare", "permissions", "openapi"],
    )
    parser.add_argument("--check", action="store_true", help="the same as the `check` command")
    parser.add_argument("--port", type=int, help="HTTP port (HTTP_PORT)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (METRICS_PORT)")
    parser.add_argument("--grant", metavar="ROLE", help="`migrate`: the runtime role to grant")
    args = parser.parse_args()
    if args.command == "permissions":
        print(json.dumps(dataclasses.asdict(service.broker)))
        return
    if args.command == "openapi":
        print(json.dumps(service.document() if service.document else {}))
        return
    overrides = {
        key: value
        for key, value in {"http_port": args.port, "metrics_port": args.metrics_port}.items()
        if value is not None
    }
    settings = service.settings(**overrides)
    if args.check or args.command == "check":
        return
    if args.command == "declare":
        asyncio.run(declare_work_queues(settings, service.queues))
        return
    if args.command == "migrate":
        if service.migrations is None:
            print("this service owns no schema: nothing to migrate")
            return
        # Alembic and SQLAlchemy only here: imported by every serving process they would cost
        # each one about 30 MB.
        from chassis.migrations import upgrade

        # Alembic's own lines on stderr ("Running upgrade a -> b"): what a deploy reads to say
        # whether a migration ran.
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
        upgrade(settings.database_url, service.migrations, settings.database_schema)
        if args.grant and service.grant is not None:
            asyncio.run(
                _grant(settings.database_url, service.grant, args.grant, settings.database_schema)
            )
        return
    serve(service.create_app, settings)
