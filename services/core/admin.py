"""Create an admin, or promote an existing account: `python -m services.core.admin --email E`.

The password comes from the `ADMIN_PASSWORD` environment variable, else from a prompt (never
from the command line, where the shell and `make` would see and mangle it), and is never
printed. An existing account that is not an admin is promoted only with `--promote`:
registration is open, so the account may belong to whoever registered the address first. An
existing account's password is changed only with `--reset-password`, and an account is promoted
only once its e-mail address is verified (an account made here is: the operator vouches for
it). Promoting an account, or giving it a new password, cuts off every token it holds, and each
change is audited. Running it again with the same arguments changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

import asyncpg
from pydantic import ValidationError
from redis.asyncio import Redis

from chassis.http import Revocations
from services.core.audit.service import Origin, record
from services.core.auth import repository
from services.core.auth.schemas import RegisterIn
from services.core.auth.service import Passwords
from services.core.settings import CoreSettings


class RefusedPromotion(Exception):
    """The address belongs to an account that is not an admin, and promoting was not asked; or
    its password is another one, and resetting it was not asked."""


async def ensure_admin(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    revocations: Revocations,
    email: str,
    password: str,
    name: str,
    promote: bool = False,
    reset_password: bool = False,
) -> asyncpg.Record:
    """Make `email` an admin with `password`, creating the account if needed; an existing
    customer only when `promote`, an existing account's password changed only when
    `reset_password`. A changed role or password revokes the account's tokens."""
    email = email.lower()
    password_hash = await passwords.hash(password)
    origin = Origin.internal("make admin")
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.user_by_email(conn, email)
        if row is None:
            created = await repository.insert_user(
                conn,
                email=email,
                name=name,
                password_hash=password_hash,
                role="admin",
                verified=True,
            )
            if created is not None:
                await record(
                    conn,
                    "account.registered",
                    origin,
                    subject=email,
                    details={"role": "admin", "user_id": str(created["id"])},
                )
                return created
            row = await repository.user_by_email(conn, email)  # created concurrently
            assert row is not None
        if row["role"] != "admin" and not promote:
            raise RefusedPromotion(
                f"{email} is an existing {row['role']} account, possibly registered by someone "
                "else: PROMOTE=1 makes it an admin (its tokens are revoked; RESET_PASSWORD=1 sets "
                "the password you gave, which its registrant does not know)"
            )
        if row["role"] != "admin" and row["email_verified_at"] is None:
            raise RefusedPromotion(
                f"{email} has not verified its e-mail address: whoever registered it must open "
                "the link mailed to it (`make mail` lists the development outbox) first"
            )
        role = "admin" if row["role"] != "admin" else None
        new_hash = None if await passwords.verify(row["password_hash"], password) else password_hash
        if new_hash is not None and not reset_password:
            raise RefusedPromotion(
                f"{email} exists with another password: RESET_PASSWORD=1 sets this one (every "
                "token of the account is revoked)"
            )
        if role is None and new_hash is None:
            return row
        changed = await repository.change_credentials(
            conn, str(row["id"]), role=role, password_hash=new_hash
        )
        revoked = await repository.revoke_sessions(conn, row["id"])
        if role is not None:
            await record(
                conn,
                "account.role_changed",
                origin,
                subject=email,
                details={"from": row["role"], "to": role, "sessions_revoked": revoked},
            )
        if new_hash is not None:
            await record(
                conn,
                "account.password_reset",
                origin,
                subject=email,
                details={"sessions_revoked": revoked},
            )
    await revocations.cut_off_account(str(changed["id"]), changed["token_version"])
    return changed


async def _main(
    email: str, password: str, name: str, *, promote: bool, reset_password: bool
) -> None:
    settings = CoreSettings()
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=1,
        server_settings={"search_path": settings.database_schema},
    )
    redis = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout)
    revocations = Revocations(
        redis, prefix=settings.redis_key_prefix, refresh_token_ttl=settings.refresh_token_ttl
    )
    try:
        row = await ensure_admin(
            pool=pool,
            passwords=Passwords(settings),
            revocations=revocations,
            email=email,
            password=password,
            name=name,
            promote=promote,
            reset_password=reset_password,
        )
    except RefusedPromotion as exc:
        sys.exit(f"refused: {exc}")
    finally:
        await pool.close()
        await redis.aclose()
    print(f"admin ready: {row['email']} ({row['id']})")


def read_password() -> str:
    """`ADMIN_PASSWORD`, else typed twice at a prompt."""
    password = os.environ.get("ADMIN_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        sys.exit("no password: set ADMIN_PASSWORD, or run this at a terminal to be prompted")
    password = getpass.getpass("Password for the admin: ")
    if getpass.getpass("The same again: ") != password:
        sys.exit("the passwords differ")
    return password


def main() -> None:
    """Parse arguments, validate them like registration does (the password never echoed), and
    ensure the admin."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Administrator")
    parser.add_argument(
        "--promote", action="store_true", help="make an existing customer account an admin"
    )
    parser.add_argument(
        "--reset-password", action="store_true", help="set an existing account's password"
    )
    args = parser.parse_args()
    password = read_password()
    try:
        RegisterIn(email=args.email, password=password, name=args.name)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        sys.exit("invalid admin: " + "; ".join(problems))
    asyncio.run(
        _main(
            args.email,
            password,
            args.name,
            promote=args.promote,
            reset_password=args.reset_password,
        )
    )


if __name__ == "__main__":
    main()
