"""Settings of the core service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from chassis.settings import DEV_KEY_DIR, ServiceSettings, is_development_secret

# The webhook secret every copy of this code once shared: refused everywhere.
PUBLIC_WEBHOOK_SECRET = "whsec_relais_development"  # noqa: S105
MIN_WEBHOOK_SECRET = 16


class CoreSettings(ServiceSettings):
    """Core's settings: the chassis' plus login limits, caching and password hashing."""

    service_name: str = "core"
    # Sign-in attempts per account from one client address (a success resets them), then
    # failed ones per account from every address together: a slower back-off that stops a
    # distributed guesser without letting one address lock the owner out.
    login_failure_limit: str = "5/15minutes"
    login_account_failure_limit: str = "50/hour"
    product_cache_ttl: float = Field(300.0, gt=0)
    product_absent_ttl: float = Field(5.0, gt=0)
    idempotency_retention_hours: int = Field(24, gt=0)
    password_time_cost: int = Field(2, ge=2)
    password_memory_kib: int = Field(19 * 1024, ge=19 * 1024)
    password_parallelism: int = Field(1, ge=1)
    # The secret providers sign webhooks with: inline, or in a file (`make up` generates one).
    payments_webhook_secret: SecretStr | None = None
    payments_webhook_secret_file: Path | None = Path(DEV_KEY_DIR) / "webhook-secret"
    webhook_tolerance_seconds: int = Field(300, gt=0)
    payment_hold_seconds: float = Field(900.0, gt=0)
    order_sweep_interval: float = Field(10.0, gt=0)
    payment_wait_max: int = Field(30, ge=0, le=300)
    rpc_deadline: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _refuse_development_webhook_secret(self) -> CoreSettings:
        inline, path = self.payments_webhook_secret, self.payments_webhook_secret_file
        if inline is not None and inline.get_secret_value() == PUBLIC_WEBHOOK_SECRET:
            raise ValueError("PAYMENTS_WEBHOOK_SECRET is the public development value")
        generated = path is None or is_development_secret(path)
        if self.relais_env == "production" and inline is None and generated:
            raise ValueError(
                "refusing to start in production: PAYMENTS_WEBHOOK_SECRET is unset or "
                "PAYMENTS_WEBHOOK_SECRET_FILE points at the generated development secret"
            )
        return self

    def webhook_secret(self) -> str:
        """The webhook signing secret (read once, at startup)."""
        if self.payments_webhook_secret is not None:
            secret = self.payments_webhook_secret.get_secret_value()
        elif self.payments_webhook_secret_file is not None:
            secret = self.payments_webhook_secret_file.read_text().strip()
        else:
            raise ValueError("no webhook secret: set PAYMENTS_WEBHOOK_SECRET(_FILE)")
        if len(secret) < MIN_WEBHOOK_SECRET or secret == PUBLIC_WEBHOOK_SECRET:
            raise ValueError("the webhook secret is too short or the public development value")
        return secret
