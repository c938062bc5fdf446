"""JWT access/refresh tokens: issue, verify (PyJWT, algorithm pinned) and revoke in Redis.

Every login starts a token *family* (`fid`): refreshing rotates the pair inside the family, and
revoking the family revokes every access and refresh token of that login at once. Every token
also carries its account's *credentials version* (`ver`): a change of role or password raises
the version (in the database, then here), which cuts off every token issued before it, on every
request and on refresh. A login's tokens say how it was proven (`amr`, RFC 8176: `pwd`, and `otp`
after a second factor); admin actions can require the second.

The same keys sign single-purpose tokens (`sign_once`/`decode_once`: a sign-in's two-factor
challenge, an e-mail's verification or password-reset link), each kind with its own `typ`, so
none of them passes for another or for an access token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web
from redis.asyncio import Redis

from chassis.errors import Forbidden, Unauthorized
from chassis.settings import SETTINGS, ServiceSettings

PRINCIPAL = web.RequestKey["Principal"]("principal")
# The verified claims of the request's access token.
CLAIMS = web.RequestKey["dict[str, Any]"]("claims")

TOKENS = web.AppKey["TokenService"]("tokens")

TokenType = Literal["access", "refresh"]
OnceKind = Literal["2fa-challenge", "email-verification", "password-reset"]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "typ", "iss", "aud"]
CLOCK_LEEWAY = 5
# Tokens whose signature and claims were checked, kept until they expire: a client sends the
# same access token with every request, and an EdDSA verification costs more than the rest of
# a cached read. Revocation is still looked up in Redis on every request.
VERIFIED_CACHE_SIZE = 10_000
# Where a client that cannot send headers puts its access token.
TOKEN_PARAMETER = "access_token"  # noqa: S105 - a parameter name, not a secret


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an authenticated request acts for."""

    user_id: str
    role: str
    jti: str
    family: str
    expires_at: int
    # whether the login was proven with a second factor (RFC 8176 `otp` in its `amr`)
    two_factor: bool = False


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A freshly issued access and refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int

    def as_json(self) -> dict[str, Any]:
        """The token part of an auth response."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


class Revocations:
    """What cuts tokens off before they expire, kept in Redis: revoked token ids and families,
    spent refresh tokens, and each account's credentials version."""

    def __init__(self, redis: Redis, *, prefix: str, refresh_token_ttl: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._longest_ttl = refresh_token_ttl + CLOCK_LEEWAY

    async def check(self, claims: dict[str, Any]) -> None:
        """Refuse the token if it, its family or its account's credentials were revoked (one
        round trip)."""
        reason = _refusal(claims, *await self._redis.mget(*self._keys(claims)))
        if reason is not None:
            raise Unauthorized(reason)

    async def refusals(self, tokens: Sequence[dict[str, Any]]) -> list[str | None]:
        """Why each token is cut off now (None: it is not), in one round trip for all: for
        connections that outlive the request that checked their token."""
        keys = [key for claims in tokens for key in self._keys(claims)]
        values = await self._redis.mget(keys) if keys else []
        return [_refusal(claims, *values[3 * i : 3 * i + 3]) for i, claims in enumerate(tokens)]

    def _keys(self, claims: dict[str, Any]) -> tuple[str, str, str]:
        return (
            self._key("revoked:jti", claims["jti"]),
            self._key("revoked:fid", claims["fid"]),
            self._key("version", claims["sub"]),
        )

    async def cut_off_account(self, user_id: str, version: int) -> None:
        """Refuse every token of the account older than `version` (kept for as long as the
        oldest such token could live)."""
        await self._redis.set(self._key("version", user_id), version, ex=self._longest_ttl)

    async def spend_refresh(self, claims: dict[str, Any]) -> bool:
        """Mark a refresh token spent; False (and the family revoked) if it was spent before."""
        first = await self.spend(claims)
        if not first:
            await self.revoke_family(claims["fid"])
        return first

    async def spend(self, claims: dict[str, Any]) -> bool:
        """Mark a single-use token spent until it expires; False if it was spent before."""
        ttl = max(1, int(claims["exp"]) - int(time.time()) + CLOCK_LEEWAY)
        return bool(await self._redis.set(self._key("spent", claims["jti"]), b"1", nx=True, ex=ttl))

    async def revoke_family(self, family: str) -> None:
        """Revoke every token of one login."""
        await self._redis.set(self._key("revoked:fid", family), b"1", ex=self._longest_ttl)

    async def revoke_token(self, jti: str, expires_at: int) -> None:
        """Revoke one token until it would have expired anyway."""
        ttl = max(1, expires_at - int(time.time()) + CLOCK_LEEWAY)
        await self._redis.set(self._key("revoked:jti", jti), b"1", ex=ttl)

    def _key(self, kind: str, value: str) -> str:
        return f"{self._prefix}auth:{kind}:{value}"


def _refusal(claims: dict[str, Any], jti: Any, family: Any, version: Any) -> str | None:
    if jti is not None or family is not None:
        return "Token has been revoked"
    if version is not None and token_version(claims) < int(version):
        return "The account's role or password changed; log in again"
    return None


def token_version(claims: dict[str, Any]) -> int:
    """The credentials version a token was issued under (tokens from before versions: 0)."""
    version = claims.get("ver", 0)
    return version if isinstance(version, int) else -1


class TokenService:
    """Issues and verifies tokens; what revokes them lives in `revocations`."""

    def __init__(
        self,
        settings: ServiceSettings,
        redis: Redis,
        *,
        can_sign: bool,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        self._settings = settings
        self._algorithm = settings.jwt_algorithm
        self._public_key = settings.jwt_public_pem()
        self._private_key = settings.jwt_private_pem() if can_sign else None
        self.revocations = Revocations(
            redis, prefix=settings.redis_key_prefix, refresh_token_ttl=settings.refresh_token_ttl
        )
        # 0: no cache (a caller that checks each token once, such as a socket's handshake)
        self._cache_size = cache_size
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}

    def issue_pair(
        self,
        *,
        user_id: str,
        role: str,
        version: int,
        family: str | None = None,
        two_factor: bool = False,
    ) -> TokenPair:
        """Sign a new access and refresh token of credentials `version` in `family` (a new
        family when None); `two_factor`: the login was proven with a second factor."""
        family = family or uuid.uuid4().hex
        settings = self._settings
        common = {"fid": family, "ver": version, "amr": ["pwd", "otp"] if two_factor else ["pwd"]}
        return TokenPair(
            access_token=self._sign(
                "access", user_id, settings.access_token_ttl, role=role, **common
            ),
            refresh_token=self._sign("refresh", user_id, settings.refresh_token_ttl, **common),
            expires_in=settings.access_token_ttl,
        )

    def sign_once(self, kind: OnceKind, *, subject: str, ttl: int, **claims: Any) -> str:
        """Sign a single-purpose token of `kind` for `subject`, valid `ttl` seconds (what makes
        it single-use is its consumer's state)."""
        return self._sign(kind, subject, ttl, **claims)

    def decode_once(self, token: str, kind: OnceKind) -> dict[str, Any]:
        """Verify a single-purpose token of `kind` (signature, algorithm, claims, `typ`); it
        expires on the second (no leeway: the stack that signed it checks it)."""
        return self._decode(token, kind, leeway=0)

    def _sign(self, typ: str, subject: str, ttl: int, **extra: Any) -> str:
        private_key = self._private_key
        if private_key is None:
            raise RuntimeError("this service verifies tokens but cannot sign them")
        now = int(time.time())
        claims = {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "sub": subject,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "typ": typ,
            **extra,
        }
        return jwt.encode(claims, private_key, algorithm=self._algorithm)

    def decode(self, token: str, typ: TokenType) -> dict[str, Any]:
        """Verify signature, algorithm, required claims, issuer, audience and `typ`."""
        cached = self._verified.get((token, typ))
        if cached is not None:
            if time.time() <= cached["exp"] + CLOCK_LEEWAY:
                return cached
            del self._verified[(token, typ)]  # expired: let PyJWT say so
        claims = self._decode(token, typ)
        if not isinstance(claims.get("fid"), str):
            raise Unauthorized("Invalid token: no token family")
        if not self._cache_size:
            return claims
        if len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[(token, typ)] = claims
        return claims

    def _decode(self, token: str, typ: str, *, leeway: int = CLOCK_LEEWAY) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=[self._algorithm],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from exc
        if claims.get("typ") != typ:
            raise Unauthorized(f"Invalid token: expected a {typ} token")
        return claims

    async def verify(self, token: str, typ: TokenType) -> dict[str, Any]:
        """Decode the token and refuse it if it, its family or its account's credentials were
        revoked."""
        claims = self.decode(token, typ)
        await self.revocations.check(claims)
        return claims


async def authenticated(request: web.Request, *, query_token: bool = False) -> Principal:
    """The caller of a request that needs a valid Bearer access token (401 otherwise);
    `query_token`: the token may come as the `access_token` query parameter instead (RFC 6750
    §2.3), for clients that cannot send headers, such as a browser's WebSocket."""
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if query_token and not scheme:
        scheme, token = "bearer", request.query.get(TOKEN_PARAMETER, "")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A Bearer access token is required")
    claims = await request.app[TOKENS].verify(token.strip(), "access")
    principal = Principal(
        user_id=claims["sub"],
        role=str(claims.get("role", "customer")),
        jti=claims["jti"],
        family=claims["fid"],
        expires_at=int(claims["exp"]),
        two_factor="otp" in (claims.get("amr") or ()),
    )
    request[PRINCIPAL] = principal
    request[CLAIMS] = claims
    return principal


async def admin(request: web.Request) -> Principal:
    """The caller of a request that needs the `admin` role (403 otherwise), signed in with a
    second factor where admins must be (`REQUIRE_ADMIN_2FA`)."""
    principal = await authenticated(request)
    if principal.role != "admin":
        raise Forbidden("This action needs the admin role")
    if not principal.two_factor and request.app[SETTINGS].admins_need_two_factor:
        raise Forbidden(
            "Admin actions need a two-factor sign-in: enrol at /api/auth/2fa/enrol, then log in "
            "again with a code"
        )
    return principal
