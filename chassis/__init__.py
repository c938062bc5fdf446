"""The Relais chassis: what every service is built on.

Modules: `settings` (environment, production guard), `app` (factory helpers, entry point),
`keys` (typed app and request keys), `problems` (RFC 9457 errors), `middleware` (the edge:
request id, errors, access log, RED metrics, server spans), `metrics` (with exemplars),
`tracing` (OpenTelemetry), `otlp_encoding` (the span exporter's faster encoder), `health`,
`resources` (PostgreSQL and Redis as `cleanup_ctx`, background tasks), `auth` (JWT, revocation),
`ratelimit`, `near_cache` (two-tier cache, recorded invalidations), `payloads` (JSON in and
out), `money` (currencies, amounts), `pagination`, `routes` (declared, enforced and documented
operations), `openapi`, `migrations`, `contracts` (message models), `amqp` (RabbitMQ, broker
permissions), `consumer`, `outbox`, `listen`, `rpc`.

Exceptions a handler raises to answer a client (all render as problem+json)::

    DomainError                 400
    ├── BadRequest              400  malformed JSON or header
    ├── Unauthorized            401  missing, invalid or revoked token
    ├── Forbidden               403  role not allowed
    ├── NotFound                404
    ├── Conflict                409  duplicate, no stock, request in progress
    ├── UnsupportedMediaType    415
    ├── Unprocessable           422  invalid fields (with `errors`)
    ├── TooManyRequests         429  with Retry-After
    ├── ServiceUnavailable      503  dependency down, no worker for an RPC
    └── GatewayTimeout          504  a worker missed the RPC deadline
"""

from chassis.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    GatewayTimeout,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "DomainError",
    "Forbidden",
    "GatewayTimeout",
    "NotFound",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
]
