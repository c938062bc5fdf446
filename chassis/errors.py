"""The domain error tree: errors a handler raises to answer a client (rendered as problem+json
by `chassis.http`)::

    DomainError                 400
    ├── BadRequest              400  malformed JSON or header
    ├── Unauthorized            401  missing, invalid or revoked token
    ├── Forbidden               403  role not allowed
    ├── NotFound                404
    ├── Conflict                409  duplicate, no stock, request in progress
    ├── PayloadTooLarge         413  a body or an uploaded file past its limit
    ├── UnsupportedMediaType    415
    ├── UpgradeRequired         426  a plain request where a WebSocket handshake belongs
    ├── Unprocessable           422  invalid fields (with `errors`)
    ├── TooManyRequests         429  with Retry-After
    ├── ServiceUnavailable      503  dependency down, no worker for an RPC
    └── GatewayTimeout          504  a worker missed the RPC deadline
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import redis.exceptions

# A database or cache that cannot be reached is a 503 to retry, not a 500 to report: in an HTTP
# handler and in an RPC server alike.
DEPENDENCY_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    TimeoutError,
)

# What a loop that reads or writes PostgreSQL survives, and retries: the server unreachable or
# failing a statement, or a connection closed under a transaction (asyncpg's InterfaceError:
# "cannot call Transaction.__aexit__(): the underlying connection is closed", which killed the
# payments worker's outbox relay on a game day).
DATABASE_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DomainError(Exception):
    """An error the client caused or may act on; rendered as problem+json with `status`."""

    status = 400
    slug = "bad-request"
    title = "Bad request"
    # headers every error of the class answers with (the caller's own are added)
    default_headers: Mapping[str, str] = {}

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = {**self.default_headers, **(headers or {})}
        self.extra = dict(extra or {})


class BadRequest(DomainError):
    """The request is malformed (bad JSON, bad header)."""


class Unauthorized(DomainError):
    """No valid credentials."""

    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="relais"'})


class Forbidden(DomainError):
    """Valid credentials that lack the needed role."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    """The resource does not exist, or the caller may not know that it does."""

    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    """The request conflicts with the current state (duplicate, no stock, in progress)."""

    status, slug, title = 409, "conflict", "Conflict"


class UpgradeRequired(DomainError):
    """A plain HTTP request to an address that speaks WebSocket only."""

    status, slug, title = 426, "upgrade-required", "Upgrade required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Upgrade": "websocket", "Connection": "Upgrade"})


class PayloadTooLarge(DomainError):
    """The body, or a file it carries, is larger than the endpoint takes."""

    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(DomainError):
    """The body is not in a media type the endpoint accepts."""

    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(DomainError):
    """The body parsed but its content is invalid."""

    status, slug, title = 422, "validation-error", "Validation failed"


class TooManyRequests(DomainError):
    """A rate limit was hit; `Retry-After` says when to try again."""

    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(DomainError):
    """A dependency is down: the client is told when to retry (`Retry-After`)."""

    status, slug, title = 503, "service-unavailable", "Service unavailable"
    default_headers = {"Retry-After": "1"}


class GatewayTimeout(DomainError):
    """A worker did not answer before the deadline."""

    status, slug, title = 504, "gateway-timeout", "Gateway timeout"
