"""Registration, login (with its second factor), token refresh, logout, the e-mail's
verification and the password's reset and change. Every sign-in is a session (a token family)
its owner can list and revoke; every security event is audited."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chassis.data import Db
from chassis.errors import BadRequest, Conflict, Forbidden, ServiceUnavailable, Unauthorized
from chassis.http import Principal, RateLimiter, TokenService, token_version
from services.core.audit.service import Origin, record
from services.core.auth import repository
from services.core.mail import Mail, Mailer, send_or_log
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
    return {
        **{key: row[key] for key in ("id", "email", "name", "role", "created_at")},
        "email_verified": row["email_verified_at"] is not None,
        "two_factor_enabled": row["totp_enabled_at"] is not None,
    }


def signed_in(
    tokens: TokenService,
    row: asyncpg.Record,
    family: str | None = None,
    *,
    two_factor: bool = False,
) -> dict[str, Any]:
    """The answer to a successful sign-in: the user and a fresh token pair of its current
    role and credentials version."""
    pair = tokens.issue_pair(
        user_id=str(row["id"]),
        role=row["role"],
        version=row["token_version"],
        family=family,
        two_factor=two_factor,
    )
    return {"user": user_json(row), **pair.as_json()}


async def start_session(
    conn: Db, tokens: TokenService, row: asyncpg.Record, origin: Origin, *, two_factor: bool
) -> dict[str, Any]:
    """Record a new login from `origin` and sign its first token pair."""
    family = uuid.uuid4()
    await repository.start_session(
        conn,
        family,
        row["id"],
        user_agent=origin.user_agent,
        address=origin.address,
        two_factor=two_factor,
    )
    return signed_in(tokens, row, family.hex, two_factor=two_factor)


async def complete_login(
    conn: Db, tokens: TokenService, row: asyncpg.Record, origin: Origin, *, factors: list[str]
) -> dict[str, Any]:
    """Start the session of a login that passed every factor, and audit it (call in a
    transaction)."""
    result = await start_session(conn, tokens, row, origin, two_factor=len(factors) > 1)
    await record(
        conn,
        "auth.login.succeeded",
        origin,
        actor_id=row["id"],
        subject=row["email"],
        details={"factors": factors},
    )
    return result


@dataclass(frozen=True)
class Links:
    """Where an e-mail's links point, and how long they live."""

    public_url: str
    verification_ttl: int
    reset_ttl: int

    @classmethod
    def of(cls, settings: CoreSettings) -> Links:
        """The links of these settings."""
        return cls(
            settings.public_url.rstrip("/"),
            settings.email_verification_ttl,
            settings.password_reset_ttl,
        )


async def send_verification(
    mailer: Mailer, tokens: TokenService, links: Links, row: asyncpg.Record
) -> bool:
    """Mail the account a link that proves its address (signed, expiring, spent by its use)."""
    token = tokens.sign_once(
        "email-verification",
        subject=str(row["id"]),
        ttl=links.verification_ttl,
        email=row["email"],
    )
    hours = links.verification_ttl // 3600
    text = (
        f"Hello {row['name']},\n\nconfirm that this address is yours by opening this link "
        f"within {hours} hours:\n\n{links.public_url}/api/auth/verify-email?token={token}\n\n"
        '(or POST {"token": "..."} to /api/auth/verify-email). If you did not register '
        f"at Relais, ignore this message.\n\ntoken: {token}\n"
    )
    return await send_or_log(mailer, Mail(row["email"], "Confirm your e-mail address", text))


async def register(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    mailer: Mailer,
    links: Links,
    email: str,
    password: str,
    name: str,
    origin: Origin,
) -> dict[str, Any]:
    """Create a customer account, log it in, and mail it its verification link."""
    password_hash = await passwords.hash(password)
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.insert_user(
            conn, email=email.lower(), name=name, password_hash=password_hash, role="customer"
        )
        if row is None:
            raise Conflict("An account with this email already exists")
        await record(conn, "account.registered", origin, actor_id=row["id"], subject=row["email"])
        result = await start_session(conn, tokens, row, origin, two_factor=False)
    await send_verification(mailer, tokens, links, row)
    return result


async def resend_verification(
    *, pool: asyncpg.Pool, tokens: TokenService, mailer: Mailer, links: Links, user_id: str
) -> None:
    """Mail the caller a new verification link; 409 if the address is verified already."""
    row = await repository.user_by_id(pool, user_id)
    if row is None:
        raise Unauthorized("The account no longer exists")
    if row["email_verified_at"] is not None:
        raise Conflict("This address is verified already")
    if not await send_verification(mailer, tokens, links, row):
        raise ServiceUnavailable("The message could not be sent; try again later")


def _once_claims(tokens: TokenService, token: str, kind: Any, what: str) -> dict[str, Any]:
    try:
        return tokens.decode_once(token, kind)
    except Unauthorized as exc:
        raise BadRequest(f"This {what} link is invalid or has expired") from exc


async def verify_email(
    *, pool: asyncpg.Pool, tokens: TokenService, token: str, origin: Origin
) -> dict[str, Any]:
    """Mark the address of a verification link verified; the link is spent by its use."""
    claims = _once_claims(tokens, token, "email-verification", "verification")
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.mark_email_verified(conn, claims["sub"], str(claims.get("email")))
        if row is None:
            raise Conflict("This verification link was used already, or its address changed")
        await record(
            conn, "account.email_verified", origin, actor_id=row["id"], subject=row["email"]
        )
    return user_json(row)


async def login(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    limiter: RateLimiter,
    limits: LoginLimits,
    challenge_ttl: int,
    email: str,
    password: str,
    origin: Origin,
) -> dict[str, Any]:
    """Check the password, then start a session, or answer with a two-factor challenge when
    the account has a second factor; throttle failures per account and client address, and
    more slowly per account."""
    account = email.strip().lower()
    address = origin.address
    # Every attempt from this address counts (atomically, so concurrent guesses cannot slip
    # past); a success resets them. Failures from anywhere count towards the account's limit.
    await limiter.enforce(limits.per_address, "login", account, address)
    await limiter.refuse_if_spent(limits.per_account, "login-account", account)
    row = await repository.user_by_email(pool, account)
    if not await passwords.verify(row["password_hash"] if row else None, password):
        await limiter.count(limits.per_account, "login-account", account)
        actor = row["id"] if row else None
        await record(pool, "auth.login.failed", origin, actor_id=actor, subject=account)
        # The failure that spends a limit locks the account out (from here, or everywhere).
        if await limiter.spent(limits.per_address, "login", account, address) or (
            await limiter.spent(limits.per_account, "login-account", account)
        ):
            await record(pool, "auth.login.locked", origin, actor_id=actor, subject=account)
        raise Unauthorized("Wrong email or password")
    assert row is not None  # verify() is False for a missing user
    await limiter.clear(limits.per_address, "login", account, address)
    if passwords.needs_rehash(row["password_hash"]):
        await repository.rehash_password(pool, row["id"], await passwords.hash(password))
    if row["totp_enabled_at"] is not None:
        challenge = tokens.sign_once(
            "2fa-challenge", subject=str(row["id"]), ttl=challenge_ttl, ver=row["token_version"]
        )
        return {"two_factor_required": True, "challenge": challenge, "expires_in": challenge_ttl}
    async with pool.acquire() as conn, conn.transaction():
        return await complete_login(conn, tokens, row, origin, factors=["password"])


async def refresh(
    *, pool: asyncpg.Pool, tokens: TokenService, refresh_token: str, origin: Origin
) -> dict[str, Any]:
    """Rotate a refresh token; a spent one revokes its whole family."""
    claims = await tokens.verify(refresh_token, "refresh")
    family = uuid.UUID(hex=claims["fid"])
    if not await tokens.revocations.spend_refresh(claims):
        async with pool.acquire() as conn, conn.transaction():
            await end_session(
                conn,
                tokens,
                user_id=claims["sub"],
                family=claims["fid"],
                origin=origin,
                reason="refresh token reused",
            )
        raise Unauthorized("Refresh token already used; every token of this login is revoked")
    row = await repository.user_by_id(pool, claims["sub"])
    if row is None:
        raise Unauthorized("The account no longer exists")
    # The database decides, whatever Redis holds: a token older than the credentials is spent,
    # and so is one of a revoked login.
    if token_version(claims) < row["token_version"]:
        await tokens.revocations.revoke_family(claims["fid"])
        raise Unauthorized("The account's role or password changed; log in again")
    if not await repository.touch_session(
        pool, family, row["id"], user_agent=origin.user_agent, address=origin.address
    ):
        await tokens.revocations.revoke_family(claims["fid"])
        raise Unauthorized("This login was revoked; log in again")
    return signed_in(tokens, row, family=claims["fid"], two_factor="otp" in claims.get("amr", ()))


async def end_session(
    conn: Db,
    tokens: TokenService,
    *,
    user_id: str,
    family: str,
    origin: Origin,
    reason: str,
) -> bool:
    """Revoke one login of the account, in the database and for every instance at once (in the
    transaction, so a failure leaves it live and the caller may retry): False if it had no
    such live login."""
    if not await repository.revoke_session(conn, user_id, uuid.UUID(hex=family)):
        return False
    await record(
        conn,
        "session.revoked",
        origin,
        actor_id=user_id,
        subject=uuid.UUID(hex=family),
        details={"reason": reason},
    )
    await tokens.revocations.revoke_family(family)
    return True


async def logout(
    *,
    pool: asyncpg.Pool,
    tokens: TokenService,
    principal: Principal,
    refresh_token: str | None,
    origin: Origin,
) -> None:
    """Revoke the access token and its login's family (and the given refresh token's family)."""
    revocations = tokens.revocations
    await revocations.revoke_token(principal.jti, principal.expires_at)
    families = [principal.family]
    if refresh_token:
        try:
            claims = tokens.decode(refresh_token, "refresh")
        except Unauthorized:
            claims = {}  # an unusable refresh token needs no revoking
        if claims.get("sub") == principal.user_id and claims["fid"] != principal.family:
            families.append(claims["fid"])
    async with pool.acquire() as conn, conn.transaction():
        for family in families:
            if not await end_session(
                conn,
                tokens,
                user_id=principal.user_id,
                family=family,
                origin=origin,
                reason="logout",
            ):
                await revocations.revoke_family(family)  # a login from before sessions


async def end_every_session(
    conn: Db, tokens: TokenService, row: asyncpg.Record, action: str, origin: Origin
) -> None:
    """After a change of credentials (`action`, audited): every login of the account revoked,
    in the database and, through the credentials version, for every instance."""
    revoked = await repository.revoke_sessions(conn, row["id"])
    await tokens.revocations.cut_off_account(str(row["id"]), row["token_version"])
    await record(
        conn,
        action,
        origin,
        actor_id=row["id"],
        subject=row["email"],
        details={"sessions_revoked": revoked},
    )


async def change_password(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    principal: Principal,
    current_password: str,
    new_password: str,
    origin: Origin,
) -> dict[str, Any]:
    """Change the caller's password: every login is revoked, and this one goes on in a new
    session."""
    row = await repository.user_by_id(pool, principal.user_id)
    if row is None:
        raise Unauthorized("The account no longer exists")
    if not await passwords.verify(row["password_hash"], current_password):
        await record(
            pool,
            "account.password_change_refused",
            origin,
            actor_id=row["id"],
            subject=row["email"],
        )
        raise Forbidden("The current password is wrong")
    password_hash = await passwords.hash(new_password)
    async with pool.acquire() as conn, conn.transaction():
        changed = await repository.change_credentials(
            conn, principal.user_id, password_hash=password_hash
        )
        await end_every_session(conn, tokens, changed, "account.password_changed", origin)
        return await start_session(conn, tokens, changed, origin, two_factor=principal.two_factor)


async def request_reset(
    *,
    pool: asyncpg.Pool,
    tokens: TokenService,
    mailer: Mailer,
    links: Links,
    limiter: RateLimiter,
    limit: str,
    email: str,
    origin: Origin,
) -> None:
    """Mail the account a password reset link, if there is such an account (the answer is the
    same either way); throttled per address and client."""
    account = email.strip().lower()
    await limiter.enforce(limit, "password-reset", account, origin.address)
    row = await repository.user_by_email(pool, account)
    if row is None:
        return
    token = tokens.sign_once(
        "password-reset", subject=str(row["id"]), ttl=links.reset_ttl, ver=row["token_version"]
    )
    minutes = links.reset_ttl // 60
    text = (
        f"Hello {row['name']},\n\nsomebody (from {origin.address}) asked to reset the password "
        f"of this Relais account. To choose a new one within {minutes} minutes, POST "
        f'{{"token": "...", "password": "..."}} to {links.public_url}'
        f"/api/auth/password-reset/confirm with this token:\n\n{token}\n\n"
        "Every login of the account ends when the password changes. If it was not you, ignore "
        "this message: the password stays as it is.\n"
    )
    await record(
        pool, "account.password_reset_requested", origin, actor_id=None, subject=row["email"]
    )
    await send_or_log(mailer, Mail(row["email"], "Reset your Relais password", text))


async def confirm_reset(
    *,
    pool: asyncpg.Pool,
    passwords: Passwords,
    tokens: TokenService,
    token: str,
    password: str,
    origin: Origin,
) -> None:
    """Set the password a reset link was mailed for, and revoke every login of the account;
    the link is spent by its use."""
    claims = _once_claims(tokens, token, "password-reset", "password reset")
    password_hash = await passwords.hash(password)
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.reset_password(
            conn, claims["sub"], version=token_version(claims), password_hash=password_hash
        )
        if row is None:
            raise BadRequest("This password reset link was used already or is no longer valid")
        await end_every_session(conn, tokens, row, "account.password_reset", origin)
