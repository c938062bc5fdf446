"""The stack's PostgreSQL roles, database and schemas, migrated by the services themselves."""

from __future__ import annotations

import re

import asyncpg

from devstack.services import run_service_command, service_env
from devstack.settings import PAYMENTS_SCHEMA, StackSettings

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def ensure_database(config: StackSettings) -> None:
    """Create the stack's roles and database if they do not exist: core's role owns the
    database and the core schema, the payments owner the payments schema, the worker's role
    gets grants, the AI worker's role its own schema, the monitoring role pg_monitor."""
    roles = tuple(config.database_roles().values())
    for name in (*roles, config.database_name):
        if not _IDENTIFIER.match(name):
            raise SystemExit(f"not a safe PostgreSQL identifier: {name!r}")
    conn = await asyncpg.connect(config.postgres_admin_url)
    try:
        password = config.database_password.replace("'", "''")
        for role in roles:
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(f"GRANT pg_monitor TO {config.monitor_database_user}")
        if not await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", config.database_name
        ):
            await conn.execute(
                f"CREATE DATABASE {config.database_name} OWNER {config.database_user}"
            )
        for owner in (config.payments_owner_user, config.ai_database_user):
            await conn.execute(
                f"GRANT CONNECT, CREATE ON DATABASE {config.database_name} TO {owner}"
            )
    finally:
        await conn.close()
    await hand_payments_to_its_owner(config)


async def hand_payments_to_its_owner(config: StackSettings) -> None:
    """Give the payments schema and everything in it to its own owner (a stack made before
    that role existed had them owned by core's role)."""
    conn = await asyncpg.connect(config.admin_database_url)
    owner = config.payments_owner_user
    try:
        if not await conn.fetchval(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1", PAYMENTS_SCHEMA
        ):
            return
        objects = await conn.fetch(
            """SELECT format('ALTER %s %s OWNER TO %I', kind, name, $2::text) AS statement
               FROM (SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
                            c.oid::regclass::text AS name, c.relowner AS owner
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- a serial's own sequence
                                       WHERE d.objid = c.oid AND d.deptype = 'a'
                                         AND c.relkind = 'S')
                     UNION ALL
                     SELECT 'FUNCTION', p.oid::regprocedure::text, p.proowner
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = $1) AS o
               WHERE owner <> (SELECT oid FROM pg_roles WHERE rolname = $2)""",
            PAYMENTS_SCHEMA,
            owner,
        )
        async with conn.transaction():
            await conn.execute(f"ALTER SCHEMA {PAYMENTS_SCHEMA} OWNER TO {owner}")
            for row in objects:
                await conn.execute(row["statement"])
            await conn.execute(
                f"REVOKE ALL ON SCHEMA {PAYMENTS_SCHEMA} FROM {config.database_user}"
            )
    finally:
        await conn.close()


def migrate(config: StackSettings) -> None:
    """Bring every service's schema up to date, each as its schema's owner (the service's own
    `migrate` command), then give the runtime roles their grants: the payments worker's on its
    schema, the AI worker's on the catalog."""
    env = service_env(config, "core-1", 0, 0, traced=False)
    run_service_command("services.core", ["migrate", "--grant", config.ai_database_user], env)
    run_service_command("services.ai", ["migrate"], service_env(config, "ai-1", 0, 0, traced=False))
    owner = {
        **service_env(config, "payments-1", 0, 0, traced=False),
        "DATABASE_URL": config.database_url_of(config.payments_owner_user),
    }
    run_service_command(
        "services.payments", ["migrate", "--grant", config.payments_database_user], owner
    )


async def drop_database(config: StackSettings) -> None:
    """Drop the stack's database and then its roles but core's (for throwaway stacks in tests
    and benchmarks; the roles must not be shared with another stack)."""
    conn = await asyncpg.connect(config.postgres_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{config.database_name}" WITH (FORCE)')
        for role in (
            config.payments_database_user,
            config.payments_owner_user,
            config.ai_database_user,
            config.monitor_database_user,
        ):
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()
