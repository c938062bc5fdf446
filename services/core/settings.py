"""Settings of the core service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from chassis.settings import ServiceSettings


class CoreSettings(ServiceSettings):
    """Core's settings: the chassis' plus login limits, caching and password hashing."""

    service_name: str = "core"
    # Sign-in attempts per account from one client address (a success resets them), then
    # failed ones per account from every address together: a slower back-off that stops a
    # distributed guesser without letting one address lock the owner out.
    login_failure_limit: str = "5/15minutes"
    login_account_failure_limit: str = "50/hour"
    # Two-factor sign-in: seconds a login's challenge lives, code attempts per account, the
    # issuer shown in authenticator apps.
    two_factor_challenge_ttl: int = Field(300, gt=0, le=3600)
    two_factor_attempt_limit: str = "5/5minutes"
    totp_issuer: str = "Relais"
    # E-mail links: seconds a verification and a password reset link live; reset requests per
    # address and client.
    email_verification_ttl: int = Field(48 * 3600, gt=0)
    password_reset_ttl: int = Field(3600, gt=0)
    password_reset_limit: str = "3/hour"  # noqa: S105 - a rate, not a secret
    # The e-mail port: `outbox` keeps messages in a table (`make mail`), `smtp` sends them.
    mail_backend: Literal["outbox", "smtp"] = "outbox"
    mail_from: str = "Relais <no-reply@relais.example.com>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout: float = Field(10.0, gt=0)
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
    # Searches and recommendations per account (an index lookup each: cheaper than an analysis
    # or an assistant's turn, and pages call them often).
    ai_search_rate_limit: str = "600/minute"
    ai_deadline: float = Field(10.0, gt=0)
    ai_audio_deadline: float = Field(30.0, gt=0)
    # The shopping assistant: conversations kept this long after their last turn, and their last
    # turns kept (a turn is a message and its reply); products retrieved per turn.
    ai_chat_ttl: int = Field(3600, gt=0)
    ai_chat_turns: int = Field(10, ge=1)
    ai_chat_products: int = Field(5, ge=1, le=20)
    # A retrieved product is shown to the assistant only if its similarity to the conversation
    # reaches this, and half the best one's (the catalog's nearest products may still be far).
    ai_chat_min_score: float = Field(0.25, ge=-1, le=1)
    # An OpenAI-compatible chat-completions API for the assistant's replies (both unset: replies
    # come from a template over the retrieved products). Its timeouts, and the circuit breaker:
    # after `llm_breaker_threshold` failures in a row the API is not asked for
    # `llm_breaker_reset` seconds (the template answers meanwhile).
    llm_base_url: str = ""
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = "gpt-4o-mini"
    llm_connect_timeout: float = Field(2.0, gt=0)
    llm_read_timeout: float = Field(10.0, gt=0)
    llm_total_timeout: float = Field(30.0, gt=0)
    llm_breaker_threshold: int = Field(3, ge=1)
    llm_breaker_reset: float = Field(30.0, gt=0)
