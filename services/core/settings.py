"""Settings of the core service."""

from __future__ import annotations

from pydantic import Field

from chassis.settings import ServiceSettings


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
    payment_hold_seconds: float = Field(900.0, gt=0)
    order_sweep_interval: float = Field(10.0, gt=0)
    payment_wait_max: int = Field(30, ge=0, le=300)
    rpc_deadline: float = Field(5.0, gt=0)
    # The AI routes: analyses per account, and seconds the worker has to answer one (a text or
    # an image; a recording of up to 60 s is transcribed in about 12 s here, hence its own).
    ai_rate_limit: str = "60/minute"
    ai_deadline: float = Field(10.0, gt=0)
    ai_audio_deadline: float = Field(30.0, gt=0)
