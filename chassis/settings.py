"""Settings shared by every service, read from environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from aiohttp import web
from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

SETTINGS = web.AppKey["ServiceSettings"]("settings")

# The API's address on the default native stack (NGINX' port 8080).
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"

# Development values that must never reach production.
DEV_DATABASE_PASSWORD = "relais"  # noqa: S105
DEV_KEY_DIR = "var/keys"
# `make up` leaves this file beside the secrets it generates: a secret found beside it is a
# development secret, wherever the state folder lives.
DEV_MARKER = "GENERATED-FOR-DEVELOPMENT"


def is_development_secret(path: Path) -> bool:
    """Whether `path` names a secret `make up` generated (paths resolved first: a relative
    default and the absolute path `make up` passes are the same file)."""
    resolved = path.resolve()
    return (
        resolved.is_relative_to(Path(DEV_KEY_DIR).resolve())
        or (resolved.parent / DEV_MARKER).exists()
    )


class ServiceSettings(BaseSettings):
    """Base settings: every service's `Settings` class derives from this one."""

    # An empty variable means "unset", not an empty path or string.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Services that neither sign nor verify tokens skip the JWT key checks; those that only
    # verify them skip the private key's; those without a database skip its password's.
    uses_jwt: ClassVar[bool] = True
    signs_jwt: ClassVar[bool] = True
    uses_database: ClassVar[bool] = True

    relais_env: Literal["development", "test", "production"] = "development"
    service_name: str = "relais"
    # The API's address as its clients reach it (NGINX): problem types and the API index link
    # to pages under it.
    public_url: str = DEFAULT_PUBLIC_URL
    http_host: str = "127.0.0.1"
    http_port: int = Field(8001, ge=0, le=65535)
    metrics_port: int = Field(9101, ge=0, le=65535)
    http_unix_socket: Path | None = None
    shutdown_timeout: float = Field(10.0, gt=0)
    log_level: str = "INFO"

    database_url: str = f"postgresql://relais:{DEV_DATABASE_PASSWORD}@127.0.0.1:5432/relais"
    database_schema: str = "core"
    db_pool_min: int = Field(2, ge=1)
    db_pool_max: int = Field(10, ge=1)
    db_statement_timeout_ms: int = Field(5000, ge=0)
    # A streaming replica for the reads that tolerate lag (unset: every read on the primary);
    # they go to the primary while its replay lags more than `replica_max_lag` seconds, or it
    # does not answer (measured every `replica_check_interval` seconds).
    database_replica_url: str = ""
    replica_max_lag: float = Field(10.0, gt=0)
    replica_check_interval: float = Field(2.0, gt=0)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "relais:"
    redis_timeout: float = Field(1.0, gt=0)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_prefetch: int = Field(100, ge=1)
    amqp_delivery_limit: int = Field(10, ge=1)
    amqp_retry_delays: list[float] = [0.5, 2.0, 8.0]
    outbox_batch: int = Field(200, ge=1)
    outbox_poll_interval: float = Field(1.0, gt=0)
    outbox_linger_ms: float = Field(5.0, ge=0)
    outbox_retention_hours: int = Field(24, gt=0)
    trusted_proxies: list[str] = ["127.0.0.1/32", "::1/128"]
    write_rate_limit: str = "300/minute"

    # OpenTelemetry's own variable names (see chassis.tracing).
    otel_sdk_disabled: bool = False
    otel_service_name: str | None = None
    otel_exporter_otlp_endpoint: str = "http://127.0.0.1:4318"
    otel_traces_sampler_arg: float = Field(1.0, ge=0, le=1)

    jwt_private_key_file: Path | None = Path(DEV_KEY_DIR) / "jwt-private.pem"
    jwt_public_key_file: Path | None = Path(DEV_KEY_DIR) / "jwt-public.pem"
    jwt_private_key: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: Literal["EdDSA", "RS256"] = "EdDSA"
    jwt_issuer: str = "relais"
    jwt_audience: str = "relais-api"
    access_token_ttl: int = Field(900, gt=0)
    refresh_token_ttl: int = Field(30 * 24 * 3600, gt=0)
    # Admin actions only from a login proven with a second factor (unset: in production only).
    require_admin_2fa: bool | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings from the arguments, then the environment, then, if RELAIS_SECRETS_DIR names
        a folder (compose's /run/secrets), a file there named after the setting
        (`database_url`, `amqp_url`, `jwt_private_key`…): secrets stay out of the environment."""
        folder = os.environ.get("RELAIS_SECRETS_DIR")
        if folder:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @property
    def admins_need_two_factor(self) -> bool:
        """Whether admin actions need a login proven with a second factor."""
        if self.require_admin_2fa is None:
            return self.relais_env == "production"
        return self.require_admin_2fa

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> ServiceSettings:
        if self.relais_env != "production":
            return self
        problems = []
        if self.uses_database and f":{DEV_DATABASE_PASSWORD}@" in self.database_url:
            problems.append("DATABASE_URL still holds the development password")
        if f":{DEV_DATABASE_PASSWORD}@" in self.database_replica_url:
            problems.append("DATABASE_REPLICA_URL still holds the development password")
        if "//guest:guest@" in self.amqp_url:
            problems.append("AMQP_URL still uses RabbitMQ's guest account")
        kinds = ("private", "public") if self.signs_jwt else ("public",)
        for kind in kinds if self.uses_jwt else ():
            path = getattr(self, f"jwt_{kind}_key_file")
            inline = getattr(self, f"jwt_{kind}_key")
            if not inline and path is not None and is_development_secret(path):
                problems.append(
                    f"JWT_{kind.upper()}_KEY_FILE points at the generated development key"
                )
        if self.uses_jwt and self.jwt_public_key is None and self.jwt_public_key_file is None:
            problems.append("no JWT public key is configured")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def jwt_public_pem(self) -> str:
        """The PEM of the key that verifies tokens."""
        return _pem(self.jwt_public_key, self.jwt_public_key_file, "JWT public key")

    def jwt_private_pem(self) -> str:
        """The PEM of the key that signs tokens."""
        return _pem(self.jwt_private_key, self.jwt_private_key_file, "JWT private key")


def _pem(inline: str | None, path: Path | None, what: str) -> str:
    if inline:
        return inline
    if path is None:
        raise ValueError(f"no {what} configured")
    return path.read_text()
