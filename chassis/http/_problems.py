"""RFC 9457 problem details: the domain error tree and the one middleware that renders it."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from chassis.errors import DEPENDENCY_DOWN, DomainError, Unprocessable
from chassis.settings import DEFAULT_PUBLIC_URL, SETTINGS

REQUEST_ID = web.RequestKey("request_id", str)

log = logging.getLogger("relais.errors")

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """What a problem `type` URI names: its title, its usual status, what happened and what
    the client can do about it (its page under `/api/problems/<slug>`)."""

    title: str
    status: int
    happened: str
    to_do: str


# Every problem type the API and NGINX answer with. Titles are in sentence case.
PROBLEM_TYPES: dict[str, ProblemType] = {
    "bad-request": ProblemType(
        "Bad request",
        400,
        "The request is malformed: its JSON does not parse, or a header (Idempotency-Key, "
        "If-None-Match…) is missing or has the wrong shape.",
        "Read `detail`, fix the request and send it again.",
    ),
    "unauthorized": ProblemType(
        "Unauthorized",
        401,
        "No valid access token came with the request: it is missing, expired, revoked, or not "
        "an access token.",
        "Log in (`POST /api/auth/login`) or refresh (`POST /api/auth/refresh`), then send "
        "`Authorization: Bearer <access_token>`.",
    ),
    "forbidden": ProblemType(
        "Forbidden",
        403,
        "The token is valid, but its account's role may not do this (an admin-only operation).",
        "Ask an operator for the admin role (`make admin`), or do something else.",
    ),
    "not-found": ProblemType(
        "Not found",
        404,
        "No such resource, or not one the caller may see (another user's order is a 404 too, "
        "so that its existence does not leak).",
        "Check the id or the path; `GET /api/` lists where things are.",
    ),
    "method-not-allowed": ProblemType(
        "Method not allowed",
        405,
        "The path exists, but not with this method.",
        "Use one of the methods the `Allow` header lists.",
    ),
    "conflict": ProblemType(
        "Conflict",
        409,
        "The request conflicts with the resource's state: a duplicate (an e-mail or SKU "
        "taken), no stock left, an order already paid or cancelled, or the same "
        "Idempotency-Key in flight.",
        "Read `detail`; fetch the resource to see its state. A key in flight: retry later "
        "with the same key.",
    ),
    "payload-too-large": ProblemType(
        "Payload too large",
        413,
        "The request body is larger than 1 MiB, or the file sent to a route that takes one "
        "(`/api/ai/image/analyze`, `/api/ai/audio/analyze`) is larger than 10 MiB.",
        "Send a smaller body or file.",
    ),
    "unsupported-media-type": ProblemType(
        "Unsupported media type",
        415,
        "The body is not `application/json` (or, where a route takes a file, not "
        "`multipart/form-data`), or the file is not in a format the route decodes (an image "
        "Pillow cannot open, audio that is not WAV, FLAC or OGG, a truncated file).",
        "Send JSON with `Content-Type: application/json`, or a file of a format the route's "
        "documentation lists, whole.",
    ),
    "upgrade-required": ProblemType(
        "Upgrade required",
        426,
        "The address speaks WebSocket only (`/ws`, the realtime gateway), and the request was "
        "a plain HTTP one.",
        "Open a WebSocket (`Upgrade: websocket`), with the access token in `Authorization` or "
        "in the `access_token` query parameter.",
    ),
    "validation-error": ProblemType(
        "Validation failed",
        422,
        "The body or the query parsed, but some fields are invalid; `errors` names each field "
        "and what is wrong with it.",
        "Fix the fields `errors` names; the OpenAPI document (`/api/openapi.json`) gives "
        "every field's rules.",
    ),
    "rate-limited": ProblemType(
        "Too many requests",
        429,
        "The client's address, or the account, sent more requests than its limit allows "
        "(NGINX per address, the API per address for writes and per account for logins).",
        "Wait the seconds `Retry-After` gives, then retry.",
    ),
    "internal-error": ProblemType(
        "Internal server error",
        500,
        "The service failed in a way it did not expect. Nothing was half-done: the "
        "transaction was rolled back.",
        "Retry later; if it persists, report it with the `request_id`.",
    ),
    "remote-error": ProblemType(
        "The worker refused the request",
        400,
        "A worker the API asked over RabbitMQ (an RPC) refused the request; the status is "
        "the worker's.",
        "Read `detail`.",
    ),
    "service-unavailable": ProblemType(
        "Service unavailable",
        503,
        "A dependency (PostgreSQL, Redis, RabbitMQ, a worker) cannot be reached, or no "
        "instance could answer.",
        "Retry after the seconds `Retry-After` gives; requests with an Idempotency-Key are "
        "safe to retry.",
    ),
    "gateway-timeout": ProblemType(
        "Gateway timeout",
        504,
        "A worker did not answer before the deadline.",
        "Retry later.",
    ),
}


def problem_title(slug: str, status: int) -> str:
    """The title of a problem type (sentence case), or of its HTTP status if unknown."""
    known = PROBLEM_TYPES.get(slug)
    return known.title if known else HTTPStatus(status).phrase.capitalize()


def problem_base(request: web.Request) -> str:
    """Where this API's problem pages are: `PUBLIC_URL` + `/api/problems/`."""
    settings = request.app.get(SETTINGS)
    public = settings.public_url if settings is not None else DEFAULT_PUBLIC_URL
    return f"{public.rstrip('/')}/api/problems/"


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
        "type": problem_base(request) + slug,
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
        slug = _HTTP_SLUGS.get(exc.status, phrase.lower().replace(" ", "-"))
        return problem_response(
            request,
            status=exc.status,
            slug=slug,
            title=problem_title(slug, exc.status),
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


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>HTTP status {status}. Problem type <code>{uri}</code>
(<a href="https://www.rfc-editor.org/rfc/rfc9457">RFC 9457</a> problem details).</p>
<h2>What happened</h2><p>{happened}</p><h2>What to do</h2><p>{to_do}</p>
<p><a href="./">Every problem type</a> · <a href="/api/">the API</a></p></body></html>
"""


def _code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


async def problem_page(request: web.Request) -> web.Response:
    """`GET /api/problems/<slug>`: the page a problem `type` URI resolves to."""
    slug = request.match_info["slug"]
    known = PROBLEM_TYPES.get(slug)
    if known is None:
        raise web.HTTPNotFound(text="No such problem type")
    page = _PAGE.format(
        title=html.escape(known.title),
        status=known.status,
        uri=html.escape(problem_base(request) + slug),
        happened=_code(known.happened),
        to_do=_code(known.to_do),
    )
    return web.Response(text=page, content_type="text/html")


async def problem_index(request: web.Request) -> web.Response:
    """`GET /api/problems/`: every problem type, with its page."""
    items = "".join(
        f'<li><a href="{slug}">{html.escape(known.title)}</a> ({known.status})</li>'
        for slug, known in PROBLEM_TYPES.items()
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Problem types'
        f"</title></head><body><h1>Problem types</h1><ul>{items}</ul></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def add_problem_pages(app: web.Application) -> None:
    """Serve the problem types' pages under `/api/problems/`."""
    app.router.add_get("/api/problems/", problem_index)
    app.router.add_get("/api/problems/{slug}", problem_page)
