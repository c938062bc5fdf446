"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
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


class RegisterIn(Strict):
    email: Email
    password: Password
    name: Text


class LoginIn(Strict):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshIn(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class LogoutIn(Strict):
    refresh_token: Annotated[str | None, Field(max_length=4096)] = None


class UserOut(BaseModel):
    id: UUID
    email: str
    name: str
    role: Literal["customer", "admin"]
    created_at: datetime


class AuthOut(BaseModel):
    user: UserOut
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
