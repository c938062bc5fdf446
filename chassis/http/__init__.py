"""HTTP: what a service's web face is built from.

The app factory and entry (`create_service_app`, `serve`, `UnixSocket`), the edge middleware
(request id, problem+json errors, access log, RED metrics, server spans), RFC 9457 problems
(`PROBLEM_TYPES`, each with its page under `/api/problems/`), declared routes that give auth,
rate limits and the OpenAPI entry in one place (`ApiRoutes`, `Header`, `Upload`,
`openapi_document`, `setup_docs`), JSON payloads (`json_body`, `json_response`, `query_params`,
`JSON_INTEGER`, `Text`, `IsoDate`, `IsoDateTime`), uploaded files (`uploaded_file`), keyset
pagination (`page`, `Cursor`), JWT auth with revocation (`TokenService`, `authenticated`,
`Principal`), rate limits (`rate_limiter`, `client_address`) and health checks (`setup_health`).
The errors a handler raises live in `chassis.errors`.
"""

from chassis.http._app import BACKLOG, UnixSocket, create_service_app, serve
from chassis.http._auth import (
    CLAIMS,
    PRINCIPAL,
    TOKEN_PARAMETER,
    TOKENS,
    Principal,
    Revocations,
    TokenService,
    authenticated,
    token_version,
)
from chassis.http._health import DEFAULT_CHECKS, setup_health
from chassis.http._openapi import openapi_document, setup_docs
from chassis.http._pagination import Cursor, Position, decode_cursor, page
from chassis.http._payloads import (
    JSON_INTEGER,
    IsoDate,
    IsoDateTime,
    Text,
    dumps,
    json_body,
    json_response,
    nul_fields,
    partial_update_schema,
    path_uuid,
    query_params,
    uploaded_file,
)
from chassis.http._problems import PROBLEM_TYPES, REQUEST_ID, ProblemType
from chassis.http._ratelimit import RATE_LIMITER, RateLimiter, client_address, rate_limiter
from chassis.http._routes import ApiRoutes, Header, Upload

__all__ = [
    "BACKLOG",
    "CLAIMS",
    "DEFAULT_CHECKS",
    "JSON_INTEGER",
    "PRINCIPAL",
    "PROBLEM_TYPES",
    "RATE_LIMITER",
    "REQUEST_ID",
    "TOKENS",
    "TOKEN_PARAMETER",
    "ApiRoutes",
    "Cursor",
    "Header",
    "IsoDate",
    "IsoDateTime",
    "Position",
    "Principal",
    "ProblemType",
    "RateLimiter",
    "Revocations",
    "Text",
    "TokenService",
    "UnixSocket",
    "Upload",
    "authenticated",
    "client_address",
    "create_service_app",
    "decode_cursor",
    "dumps",
    "json_body",
    "json_response",
    "nul_fields",
    "openapi_document",
    "page",
    "partial_update_schema",
    "path_uuid",
    "query_params",
    "rate_limiter",
    "serve",
    "setup_docs",
    "setup_health",
    "token_version",
    "uploaded_file",
]
