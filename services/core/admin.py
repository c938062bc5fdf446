"""Create an admin, or promote an existing account: `python -m services.core.admin --email E`.

The password comes from `--password` or the `ADMIN_PASSWORD` environment variable.
Running it again with the same arguments changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg
from pydantic import ValidationError

from services.core.auth import repository
from services.core.auth.schemas import RegisterIn
from services.core.auth.service import Passwords
from services.core.settings import CoreSettings


async def ensure_admin(
    *, pool: asyncpg.Pool, passwords: Passwords, email: str, password: str, name: str
) -> asyncpg.Record:
    """Make `email` an admin with `password`, creating the account if needed."""
    email = email.lower()
    password_hash = await passwords.hash(password)
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.user_by_email(conn, email)
        if row is None:
            created = await repository.insert_user(
                conn, email=email, name=name, password_hash=password_hash, role="admin"
            )
            if created is not None:
                return created
            row = await repository.user_by_email(conn, email)  # created concurrently
            assert row is not None
        await repository.set_role(conn, str(row["id"]), "admin")
        if not await passwords.verify(row["password_hash"], password):
            await repository.set_password_hash(conn, row["id"], password_hash)
        refreshed = await repository.user_by_id(conn, str(row["id"]))
        assert refreshed is not None
        return refreshed


async def _main(email: str, password: str, name: str) -> None:
    settings = CoreSettings()
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=1,
        server_settings={"search_path": settings.database_schema},
    )
    try:
        row = await ensure_admin(
            pool=pool, passwords=Passwords(settings), email=email, password=password, name=name
        )
    finally:
        await pool.close()
    print(f"admin ready: {row['email']} ({row['id']})")


def main() -> None:
    """Parse arguments, validate them like registration does, and ensure the admin."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", default=os.environ.get("ADMIN_PASSWORD"))
    parser.add_argument("--name", default="Administrator")
    args = parser.parse_args()
    try:
        RegisterIn(email=args.email, password=args.password or "", name=args.name)
    except ValidationError as exc:
        sys.exit(f"invalid admin: {exc}")
    asyncio.run(_main(args.email, args.password, args.name))


if __name__ == "__main__":
    main()
