"""Request and response bodies of the users endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from chassis.http import Cursor
from services.core.auth.schemas import USER_EXAMPLE, UserOut, examples


class PageQuery(BaseModel):
    """`limit` and `cursor` of a keyset-paginated listing."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Cursor = None


class UserPage(BaseModel):
    model_config = examples({"items": [USER_EXAMPLE], "next_cursor": None})

    items: list[UserOut]
    next_cursor: str | None
