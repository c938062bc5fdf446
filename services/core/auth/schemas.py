"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    WithJsonSchema,
)

from chassis.http import Text


def _mailbox(value: str) -> str:
    # A syntactically valid address (RFC 5321) at a domain that can receive mail: special-use
    # names such as `.test` or `.localhost` cannot.
    try:
        address = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    return address.normalized


def _any_case(word: str) -> str:
    return "".join(f"[{letter.lower()}{letter.upper()}]" for letter in word)


# The document's word for the same: a mailbox whose domain is not a special-use name.
_RESERVED = "|".join(map(_any_case, email_validator.SPECIAL_USE_DOMAIN_NAMES))
Email = Annotated[
    str,
    Field(max_length=320),
    AfterValidator(_mailbox),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": 320,
            "pattern": rf"^(?![^\u0000]*[@.](?:{_RESERVED})$)[^\u0000]*$",
        }
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=1024)]


class Strict(BaseModel):
    """Input model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def examples(*values: Mapping[str, Any]) -> ConfigDict:
    """A model's examples, shown in the OpenAPI document (and tested to validate)."""
    return ConfigDict(json_schema_extra={"examples": [dict(value) for value in values]})


USER_EXAMPLE = {
    "id": "4f6c1d2e-8a3b-4c5d-9e7f-1a2b3c4d5e6f",
    "email": "ada@example.com",
    "name": "Ada",
    "role": "customer",
    "created_at": "2026-12-03T10:15:00Z",
    "email_verified": True,
    "two_factor_enabled": False,
}


class RegisterIn(Strict):
    model_config = examples(
        {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
    )

    email: Email
    password: Password
    name: Text


class LoginIn(Strict):
    model_config = examples({"email": "ada@example.com", "password": "correct horse battery"})

    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshIn(Strict):
    model_config = examples({"refresh_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln"})

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class LogoutIn(Strict):
    model_config = examples({"refresh_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln"})

    refresh_token: Annotated[str | None, Field(max_length=4096)] = None


class UserOut(BaseModel):
    model_config = examples(USER_EXAMPLE)

    id: UUID
    email: str
    name: str
    role: Literal["customer", "admin"]
    created_at: datetime
    email_verified: bool
    two_factor_enabled: bool


AUTH_EXAMPLE = {
    "user": USER_EXAMPLE,
    "access_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJhY2Nlc3MifQ.c2ln",
    "refresh_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln",
    "token_type": "Bearer",
    "expires_in": 900,
}


class AuthOut(BaseModel):
    model_config = examples(AUTH_EXAMPLE)

    user: UserOut
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int


TOKEN_EXAMPLE = "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJlbWFpbC12ZXJpZmljYXRpb24ifQ.c2ln"  # noqa: S105
# A single-purpose token (a challenge, an e-mail's link) as a client sends it back.
OnceToken = Annotated[str, Field(min_length=1, max_length=4096)]
# A six-digit TOTP code, or a recovery code (ten base32 letters, the dash optional).
Code = Annotated[str, Field(pattern=r"^([0-9]{6}|[A-Za-z2-7]{5}-?[A-Za-z2-7]{5})$")]


CHALLENGE_EXAMPLE = {"two_factor_required": True, "challenge": TOKEN_EXAMPLE, "expires_in": 300}


class ChallengeOut(BaseModel):
    """The answer to a correct password when the account has two-factor sign-in on."""

    model_config = examples(CHALLENGE_EXAMPLE)

    two_factor_required: Literal[True]
    challenge: str
    expires_in: int


class LoginOut(RootModel[AuthOut | ChallengeOut]):
    """Tokens, or a two-factor challenge to complete at `/api/auth/2fa/verify`."""

    model_config = examples(AUTH_EXAMPLE, CHALLENGE_EXAMPLE)


class VerifyEmailIn(Strict):
    model_config = examples({"token": TOKEN_EXAMPLE})

    token: OnceToken


class ResetRequestIn(Strict):
    model_config = examples({"email": "ada@example.com"})

    email: Annotated[str, Field(min_length=1, max_length=320)]


class ResetConfirmIn(Strict):
    model_config = examples({"token": TOKEN_EXAMPLE, "password": "a new horse battery"})

    token: OnceToken
    password: Password


class TwoFactorVerifyIn(Strict):
    model_config = examples({"challenge": TOKEN_EXAMPLE, "code": "123456"})

    challenge: OnceToken
    code: Code


class CodeIn(Strict):
    model_config = examples({"code": "123456"})

    code: Code


class EnrolmentOut(BaseModel):
    model_config = examples(
        {
            "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
            "otpauth_uri": "otpauth://totp/Relais:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Relais",
            "qr_code_svg": "data:image/svg+xml;charset=utf-8,%3Csvg%3E%3C%2Fsvg%3E",
            "qr_code_png": "data:image/png;base64,iVBORw0KGgo=",
        }
    )

    secret: str
    otpauth_uri: str
    qr_code_svg: str
    qr_code_png: str


class RecoveryCodesOut(BaseModel):
    model_config = examples({"recovery_codes": ["abcde-fghij"] * 10})

    recovery_codes: list[str]
