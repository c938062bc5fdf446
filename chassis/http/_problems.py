"""RFC 9457 problem details: the domain error tree and the one middleware that renders it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
import redis.exceptions
from aiohttp import web
from pydantic import ValidationError

from chassis.errors import PROBLEM_BASE, DomainError, Unprocessable

REQUEST_ID = web.RequestKey("request_id", str)

log = logging.getLogger("relais.errors")

PROBLEM_JSON = "application/problem+json"
# A database or cache that cannot be reached is a 503 to retry, not a 500 to report.
DEPENDENCY_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    TimeoutError,
)


def problem_response(
    request: web.Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """Build an RFC 9457 `application/problem+json` response."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    request_id = request.get(REQUEST_ID)
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )


def validation_problem(exc: ValidationError) -> Unprocessable:
    """Turn a pydantic error into a 422 naming every offending field."""
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return Unprocessable("The request has invalid fields", extra={"errors": errors})


_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def _context(request: web.Request) -> dict[str, Any]:
    return {"method": request.method, "path": request.path, "request_id": request.get(REQUEST_ID)}


def problem_for(request: web.Request, exc: Exception) -> web.Response:
    """The problem+json answer to an exception a handler raised; never a stack trace.

    A `web.HTTPException` below 400 (a redirect, a 304) is not an error: it is re-raised.
    """
    if isinstance(exc, DomainError):
        return problem_response(
            request,
            status=exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            headers=exc.headers,
            extra=exc.extra,
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        phrase = HTTPStatus(exc.status).phrase
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else phrase
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return problem_response(
            request,
            status=exc.status,
            slug=_HTTP_SLUGS.get(exc.status, phrase.lower().replace(" ", "-")),
            title=phrase,
            detail=detail,
            headers=headers,
        )
    if isinstance(exc, DEPENDENCY_DOWN):
        log.warning("dependency unavailable: %r", exc, extra=_context(request))
        return problem_response(
            request,
            status=503,
            slug="service-unavailable",
            title="Service unavailable",
            detail="A dependency of this service is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    log.error("unhandled error", exc_info=exc, extra=_context(request))
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="An unexpected error occurred; quote the request id when reporting it",
    )
