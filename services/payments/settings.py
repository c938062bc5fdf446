"""Settings of the payments worker."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from chassis.settings import DEV_KEY_DIR, ServiceSettings, is_development_secret

# The webhook secret every copy of this code once shared: refused everywhere.
PUBLIC_WEBHOOK_SECRET = "whsec_relais_development"  # noqa: S105
MIN_WEBHOOK_SECRET = 16


class PaymentsSettings(ServiceSettings):
    """The worker's settings: the chassis' plus its provider and how calls to it are guarded."""

    uses_jwt: ClassVar[bool] = False

    service_name: str = "payments"
    http_port: int = Field(8201, ge=0, le=65535)
    metrics_port: int = Field(9201, ge=0, le=65535)
    database_url: str = "postgresql://relais_payments:relais@127.0.0.1:5432/relais"
    database_schema: str = "payments"
    db_pool_max: int = Field(10, ge=1)

    # `stripe` when a secret key is set, else the built-in `sandbox`.
    payment_provider: Literal["sandbox", "stripe"] | None = None
    stripe_secret_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    provider_timeout: float = Field(5.0, gt=0)
    provider_attempts: int = Field(3, ge=1)
    breaker_threshold: int = Field(5, ge=1)
    breaker_reset_seconds: float = Field(30.0, gt=0)
    # The reconciler: every `reconcile_interval` s it asks the provider about payments and
    # refunds unsettled for `reconcile_after` s, and cancels charges still waiting for the buyer
    # after `payment_action_timeout` s.
    reconcile_interval: float = Field(30.0, gt=0)
    reconcile_after: float = Field(120.0, ge=0)
    payment_action_timeout: float = Field(1800.0, ge=0)
    sandbox_latency_ms: float = Field(0.0, ge=0)
    sandbox_failure_rate: float = Field(0.0, ge=0, le=1)
    # The secret providers sign webhooks with: inline, or in a file (`make up` generates one).
    payments_webhook_secret: SecretStr | None = None
    payments_webhook_secret_file: Path | None = Path(DEV_KEY_DIR) / "webhook-secret"
    webhook_tolerance_seconds: int = Field(300, gt=0)

    @property
    def provider(self) -> Literal["sandbox", "stripe"]:
        """The provider in use: the one named, else `stripe` when a secret key is set."""
        if self.payment_provider is not None:
            return self.payment_provider
        return "stripe" if self.stripe_secret_key else "sandbox"

    @model_validator(mode="after")
    def _check_provider(self) -> PaymentsSettings:
        if self.provider == "stripe" and not self.stripe_secret_key:
            raise ValueError("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY")
        if self.relais_env == "production" and self.provider == "sandbox":
            raise ValueError("refusing to start in production with the sandbox provider")
        return self

    @model_validator(mode="after")
    def _refuse_development_webhook_secret(self) -> PaymentsSettings:
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
