"""Two-factor sign-in with TOTP (RFC 6238, pyotp): enrolment, its confirmation, the second
step of a login, recovery codes, and turning it off.

A code is accepted in the time step before, at or after now (clocks drift), and once: the
account keeps the last step it accepted, and a code of that step or an earlier one is a replay.
Recovery codes are ten random base32 letters, kept as SHA-256 hashes (random, not chosen: a
slow hash adds nothing), each spent by its use. Every attempt at a code counts towards the
account's limit, and a success clears it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import pyotp
import segno

from chassis.data import Db
from chassis.errors import Conflict, Unauthorized
from chassis.http import Principal, RateLimiter, TokenService, token_version
from services.core.audit.service import Origin, record
from services.core.auth import repository as auth_repository
from services.core.auth.service import complete_login
from services.core.two_factor import repository

RECOVERY_CODES = 10
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True)
class Attempts:
    """The limiter and the limit of code attempts per account."""

    limiter: RateLimiter
    limit: str

    async def enforce(self, user_id: str) -> None:
        """Count one attempt; 429 past the limit."""
        await self.limiter.enforce(self.limit, "2fa", user_id)

    async def clear(self, user_id: str) -> None:
        """Forget the account's attempts after a success."""
        await self.limiter.clear(self.limit, "2fa", user_id)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (before, at or after now) whose code is `code`; None if none is."""
    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time() if now is None else now)
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def new_recovery_code() -> str:
    """Ten random base32 letters, shown as two groups of five."""
    letters = "".join(secrets.choice(_BASE32) for _ in range(10))
    return f"{letters[:5]}-{letters[5:]}"


def new_recovery_codes() -> list[str]:
    """A fresh set of recovery codes."""
    return [new_recovery_code() for _ in range(RECOVERY_CODES)]


def recovery_hash(code: str) -> str:
    """The stored form of a recovery code (case and dash do not matter)."""
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


class WrongCode(Unauthorized):
    """The code is not the account's (or was used already)."""


async def spend_code(db: Db, row: asyncpg.Record, code: str, *, recovery: bool) -> str:
    """Spend a TOTP code (or, if `recovery`, a recovery code) of the account: which kind it
    was; `WrongCode` if it is none, or a replay."""
    if code.isdigit():
        step = matching_step(row["totp_secret"] or "", code)
        if step is None:
            raise WrongCode("Wrong code")
        if not await repository.accept_step(db, row["id"], step):
            raise WrongCode("This code was used already; wait for the next one")
        return "totp"
    if recovery and await repository.spend_recovery_code(db, row["id"], recovery_hash(code)):
        return "recovery_code"
    raise WrongCode("Wrong code" if recovery else "A code of the authenticator app is needed")


async def _checked(
    pool: asyncpg.Pool,
    attempts: Attempts,
    row: asyncpg.Record,
    code: str,
    origin: Origin,
    *,
    recovery: bool,
    then: Any,
) -> Any:
    """Spend `code` and run `then(conn, kind)` in one transaction; a wrong code is audited and
    counted."""
    user_id = str(row["id"])
    await attempts.enforce(user_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            kind = await spend_code(conn, row, code, recovery=recovery)
            result = await then(conn, kind)
    except WrongCode as exc:
        await record(
            pool,
            "auth.2fa.failed",
            origin,
            actor_id=row["id"],
            subject=row["email"],
            details={"reason": exc.detail},
        )
        raise
    await attempts.clear(user_id)
    return result


async def _turned_on(pool: asyncpg.Pool, principal: Principal) -> asyncpg.Record:
    """The caller's account, whose two-factor sign-in is on (409 otherwise)."""
    row = await auth_repository.user_by_id(pool, principal.user_id)
    if row is None or row["totp_enabled_at"] is None:
        raise Conflict("Two-factor sign-in is not on")
    return row


async def enrol(*, pool: asyncpg.Pool, principal: Principal, issuer: str) -> dict[str, Any]:
    """A new secret for the caller's authenticator app (its `otpauth://` URI and QR code); on
    once a first code confirms it."""
    row = await auth_repository.user_by_id(pool, principal.user_id)
    if row is None:
        raise Unauthorized("The account no longer exists")
    secret = pyotp.random_base32()
    if not await repository.start_enrolment(pool, principal.user_id, secret):
        raise Conflict("Two-factor sign-in is on already: turn it off first to enrol again")
    uri = pyotp.TOTP(secret).provisioning_uri(name=row["email"], issuer_name=issuer)
    qr = segno.make(uri, error="m")
    return {
        "secret": secret,
        "otpauth_uri": uri,
        "qr_code_svg": qr.svg_data_uri(scale=4),
        "qr_code_png": qr.png_data_uri(scale=4),
    }


async def confirm(
    *, pool: asyncpg.Pool, attempts: Attempts, principal: Principal, code: str, origin: Origin
) -> dict[str, Any]:
    """Turn two-factor sign-in on with a first code of the enrolled secret: the recovery codes,
    shown this once."""
    row = await auth_repository.user_by_id(pool, principal.user_id)
    if row is None or row["totp_secret"] is None:
        raise Conflict("Start with POST /api/auth/2fa/enrol")
    if row["totp_enabled_at"] is not None:
        raise Conflict("Two-factor sign-in is on already")
    codes = new_recovery_codes()

    async def turn_on(conn: Db, kind: str) -> None:
        if await repository.turn_on(conn, row["id"], list(map(recovery_hash, codes))) is None:
            raise Conflict("Two-factor sign-in is on already")
        await record(conn, "2fa.enabled", origin, actor_id=row["id"], subject=row["email"])

    await _checked(pool, attempts, row, code, origin, recovery=False, then=turn_on)
    return {"recovery_codes": codes}


async def verify(
    *,
    pool: asyncpg.Pool,
    tokens: TokenService,
    attempts: Attempts,
    challenge: str,
    code: str,
    origin: Origin,
) -> dict[str, Any]:
    """Complete a login's challenge with a TOTP or recovery code: the session's tokens."""
    claims = tokens.decode_once(challenge, "2fa-challenge")
    row = await auth_repository.user_by_id(pool, claims["sub"])
    if (
        row is None
        or row["totp_enabled_at"] is None
        or row["token_version"] != token_version(claims)
    ):
        raise Unauthorized("This sign-in is no longer valid; log in again")

    async def sign_in(conn: Db, kind: str) -> dict[str, Any]:
        if not await tokens.revocations.spend(claims):
            raise Unauthorized("This challenge was completed already; log in again")
        return await complete_login(conn, tokens, row, origin, factors=["password", kind])

    result: dict[str, Any] = await _checked(
        pool, attempts, row, code, origin, recovery=True, then=sign_in
    )
    return result


async def turn_off(
    *, pool: asyncpg.Pool, attempts: Attempts, principal: Principal, code: str, origin: Origin
) -> None:
    """Turn two-factor sign-in off, with a fresh code (or a recovery code)."""
    row = await _turned_on(pool, principal)

    async def off(conn: Db, kind: str) -> None:
        await repository.turn_off(conn, row["id"])
        await record(
            conn,
            "2fa.disabled",
            origin,
            actor_id=row["id"],
            subject=row["email"],
            details={"proven_with": kind},
        )

    await _checked(pool, attempts, row, code, origin, recovery=True, then=off)


async def replace_recovery_codes(
    *, pool: asyncpg.Pool, attempts: Attempts, principal: Principal, code: str, origin: Origin
) -> dict[str, Any]:
    """New recovery codes (the old ones stop working), with a fresh code."""
    row = await _turned_on(pool, principal)
    codes = new_recovery_codes()

    async def replace(conn: Db, kind: str) -> None:
        await repository.replace_recovery_codes(conn, row["id"], list(map(recovery_hash, codes)))
        await record(
            conn, "2fa.recovery_codes_replaced", origin, actor_id=row["id"], subject=row["email"]
        )

    await _checked(pool, attempts, row, code, origin, recovery=False, then=replace)
    return {"recovery_codes": codes}
