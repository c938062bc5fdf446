"""Registration, login, token refresh and logout."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chassis.errors import Conflict, Unauthorized
from chassis.http import Principal, RateLimiter, TokenService, token_version
from services.core.auth import repository
from services.core.settings import CoreSettings


class Passwords:
    """argon2id hashing off the event loop, with a dummy hash so unknown users cost the same."""

    def __init__(self, settings: CoreSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        self._dummy = self._hasher.hash("not a password of anybody")

    async def hash(self, password: str) -> str:
        """The argon2id hash of `password`."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; as slow for a missing user as for a wrong password."""
        try:
            matched = await asyncio.to_thread(
                self._hasher.verify, password_hash or self._dummy, password
            )
        except (VerificationError, InvalidHashError):
            return False
        return matched and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class LoginLimits:
    """Failed sign-ins allowed per account and client address, and per account."""

    per_address: str
    per_account: str


def user_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public view of a user row."""
    return {key: row[key] for key in ("id", "email", "name", "role", "created_at")}


def signed_in(
    tokens: TokenService, row: asyncpg.Record, family: str | None = None
) -> dict[str, Any]:
    """The answer to a successful sign-in: the user and a fresh token pair of its current
    role and credentials version."""
    pair = tokens.issue_pair(
        user_id=str(row["id"]), role=row["role"], version=row["token_version"], family=family
    )
    return {"user": user_json(row), **pair.as_json()}


async def register(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    email: str,
    password: str,
    name: str,
) -> dict[str, Any]:
    """Create a customer account and log it in."""
    password_hash = await passwords.hash(password)
    row = await repository.insert_user(
        pool, email=email.lower(), name=name, password_hash=password_hash, role="customer"
    )
    if row is None:
        raise Conflict("An account with this email already exists")
    return signed_in(tokens, row)


async def login(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    limiter: RateLimiter,
    limits: LoginLimits,
    email: str,
    password: str,
    address: str,
) -> dict[str, Any]:
    """Check the password and start a new token family; throttle failures per account and client
    address, and more slowly per account."""
    account = email.strip().lower()
    # Every attempt from this address counts (atomically, so concurrent guesses cannot slip
    # past); a success resets them. Failures from anywhere count towards the account's limit.
    await limiter.enforce(limits.per_address, "login", account, address)
    await limiter.refuse_if_spent(limits.per_account, "login-account", account)
    row = await repository.user_by_email(pool, account)
    if not await passwords.verify(row["password_hash"] if row else None, password):
        await limiter.count(limits.per_account, "login-account", account)
        raise Unauthorized("Wrong email or password")
    assert row is not None  # verify() is False for a missing user
    await limiter.clear(limits.per_address, "login", account, address)
    if passwords.needs_rehash(row["password_hash"]):
        await repository.rehash_password(pool, row["id"], await passwords.hash(password))
    return signed_in(tokens, row)


async def refresh(
    *, pool: asyncpg.Pool, tokens: TokenService, refresh_token: str
) -> dict[str, Any]:
    """Rotate a refresh token; a spent one revokes its whole family."""
    claims = await tokens.verify(refresh_token, "refresh")
    if not await tokens.revocations.spend_refresh(claims):
        raise Unauthorized("Refresh token already used; every token of this login is revoked")
    row = await repository.user_by_id(pool, claims["sub"])
    if row is None:
        raise Unauthorized("The account no longer exists")
    # The database decides, whatever Redis holds: a token older than the credentials is spent.
    if token_version(claims) < row["token_version"]:
        await tokens.revocations.revoke_family(claims["fid"])
        raise Unauthorized("The account's role or password changed; log in again")
    return signed_in(tokens, row, family=claims["fid"])


async def logout(*, tokens: TokenService, principal: Principal, refresh_token: str | None) -> None:
    """Revoke the access token and its login's family (and the given refresh token's family)."""
    revocations = tokens.revocations
    await revocations.revoke_token(principal.jti, principal.expires_at)
    await revocations.revoke_family(principal.family)
    if refresh_token:
        try:
            claims = tokens.decode(refresh_token, "refresh")
        except Unauthorized:
            return  # an unusable refresh token needs no revoking
        if claims["sub"] == principal.user_id and claims["fid"] != principal.family:
            await revocations.revoke_family(claims["fid"])
