"""Request and response bodies of the users endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chassis.http import Cursor
from services.core.auth.schemas import USER_EXAMPLE, Password, Strict, UserOut, examples


class PageQuery(BaseModel):
    """`limit` and `cursor` of a keyset-paginated listing."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Cursor = None


class UserPage(BaseModel):
    model_config = examples({"items": [USER_EXAMPLE], "next_cursor": None})

    items: list[UserOut]
    next_cursor: str | None


SESSION_EXAMPLE = {
    "id": "7d3f5a9c-2b1e-4f6a-8c0d-9e1f2a3b4c5d",
    "created_at": "2026-12-05T08:00:00Z",
    "last_used_at": "2026-12-05T09:45:00Z",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "address": "203.0.113.7",
    "two_factor": False,
    "current": True,
}


class SessionOut(BaseModel):
    model_config = examples(SESSION_EXAMPLE)

    id: UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str
    address: str
    two_factor: bool
    current: bool


class SessionList(BaseModel):
    model_config = examples({"items": [SESSION_EXAMPLE]})

    items: list[SessionOut]


class PasswordChangeIn(Strict):
    model_config = examples(
        {"current_password": "correct horse battery", "new_password": "a new horse battery"}
    )

    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: Password
