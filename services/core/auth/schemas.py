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


class AuthOut(BaseModel):
    model_config = examples(
        {
            "user": USER_EXAMPLE,
            "access_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJhY2Nlc3MifQ.c2ln",
            "refresh_token": "eyJhbGciOiJFZERTQSJ9.eyJ0eXAiOiJyZWZyZXNoIn0.c2ln",
            "token_type": "Bearer",
            "expires_in": 900,
        }
    )

    user: UserOut
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
