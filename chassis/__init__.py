"""The Relais chassis: what every service is built on.

Packages, each with a public root (`__all__`; their modules are private):

- `chassis.http`: the app factory, edge middleware, problems, routes and OpenAPI, payloads,
  pagination, auth, rate limits, health;
- `chassis.messaging`: the broker, messages as models, consumers, the outbox relay, RPC, LISTEN;
- `chassis.data`: PostgreSQL and Redis pools, migrations, the two-tier cache;
- `chassis.telemetry`: logs, metrics, traces.

Modules: `chassis.main` (a service's command line), `chassis.migrations` (Alembic, imported only
by migrations and `migrate`), `chassis.settings` (the settings base and the production guard),
`chassis.tasks` (background tasks), `chassis.healthcheck` (a container's health check),
`chassis.errors` (below). The chassis names no service and no message: services give it their
contracts in handler tables.

The errors a handler raises to answer a client (each renders as problem+json) are re-exported
here from `chassis.errors`, whose docstring draws their tree.
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
