"""Alembic migrations, each service in its own PostgreSQL schema."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


def alembic_config(database_url: str, script_location: Path, schema: str) -> Config:
    """An Alembic config for one service's migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    return config


def upgrade(database_url: str, script_location: Path, schema: str, revision: str = "head") -> None:
    """Bring the service's schema up to `revision` (call outside a running event loop)."""
    command.upgrade(alembic_config(database_url, script_location, schema), revision)


def statements(script: str) -> list[str]:
    """A SQL script's statements: each ends with `;` at the end of a line, outside `$$` bodies."""
    found, pending = [], ""
    for piece in script.split(";\n"):
        pending = f"{pending};\n{piece}" if pending else piece
        if pending.count("$$") % 2 == 0:  # not inside a dollar-quoted function body
            if pending.strip():
                found.append(pending)
            pending = ""
    if pending.strip():
        found.append(pending)
    return found


def execute_script(op: Any, script: str) -> None:
    """Run a SQL script one statement at a time (asyncpg prepares each one)."""
    for statement in statements(script):
        op.execute(statement)


def sqlalchemy_url(database_url: str) -> str:
    """A libpq-style DSN as SQLAlchemy's asyncpg dialect reads it: several hosts (a primary
    and its standbys, `h1:p1,h2:p2`) become its `host=` parameters."""
    url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    scheme, rest = url.split("://", 1)
    credentials, at, location = rest.rpartition("@")
    hosts, _, path = location.partition("/")
    if "," not in hosts:
        return url
    database, _, query = path.partition("?")
    parameters = [f"host={host}" for host in hosts.split(",")] + ([query] if query else [])
    return f"{scheme}://{credentials}{at}/{database}?{'&'.join(parameters)}"


def run_env(context: Any) -> None:
    """The body of every service's `env.py`: run migrations online over asyncpg."""
    database_url: str = context.config.attributes["database_url"]
    schema: str = context.config.attributes["schema"]
    url = sqlalchemy_url(database_url)

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection, version_table_schema=schema, transactional_ddl=True
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.connect() as connection:
            await connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await connection.exec_driver_sql(f'SET search_path TO "{schema}", public')
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())
