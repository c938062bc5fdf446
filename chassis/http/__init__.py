"""TODO."""

from chassis.http._app import BACKLOG, UnixSocket, create_service_app, serve
from chassis.http._auth import (
    Principal,
    Revocations,
    TOKENS,
    TokenService,
    authenticated,
    token_version,
)
from chassis.http._health import DEFAULT_CHECKS, setup_health
from chassis.http._openapi import openapi_document, setup_docs
from chassis.http._pagination import Cursor, Position, decode_cursor, page
from chassis.http._payloads import (
    IsoDate,
    JSON_INTEGER,
    Text,
    dumps,
    json_body,
    json_response,
    nul_fields,
    partial_update_schema,
    path_uuid,
    query_params,
)
from chassis.http._ratelimit import RATE_LIMITER, RateLimiter, client_address, rate_limiter
from chassis.http._routes import ApiRoutes, Header

__all__ = [
    "BACKLOG",
    "DEFAULT_CHECKS",
    "JSON_INTEGER",
    "RATE_LIMITER",
    "TOKENS",
    "ApiRoutes",
    "Cursor",
    "Header",
    "IsoDate",
    "Position",
    "Principal",
    "RateLimiter",
    "Revocations",
    "Text",
    "TokenService",
    "UnixSocket",
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
]
