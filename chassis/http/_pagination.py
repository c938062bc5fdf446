"""Keyset-pagination cursors.

A cursor is `<microseconds since the epoch>.<row id in 32 hex digits>` of the last row served.
Every string of that shape names a position (17 digits stay far inside the datetime range), so
the pattern the API documents and the cursors it accepts are one and the same.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from chassis.errors import Unprocessable

Position = tuple[datetime, UUID]
CURSOR_PATTERN = r"^[0-9]{1,17}\.[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def _valid_cursor(value: str | None) -> str | None:
    if value is not None and not _CURSOR.fullmatch(value):
        # The client's words, not the pattern's: a cursor is opaque to whoever holds it.
        raise PydanticCustomError("cursor", "The cursor is not valid")
    return value


# A query parameter: absent, or a cursor this API issued (or could have); documented with its
# pattern.
Cursor = Annotated[
    str | None, AfterValidator(_valid_cursor), Field(json_schema_extra={"pattern": CURSOR_PATTERN})
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """The cursor that resumes after the row `(created_at, id)`."""
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{row_id.hex}"


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor names; 422 if it does not have a cursor's shape."""
    if cursor is None:
        return None
    if not _CURSOR.fullmatch(cursor):
        raise Unprocessable(
            "The cursor is not valid",
            extra={"errors": [{"field": "cursor", "message": "not a cursor this API issued"}]},
        )
    micros, row_id = cursor.split(".")
    return _EPOCH + int(micros) * _MICROSECOND, UUID(hex=row_id)


def page(rows: list[Any], limit: int, to_json: Any) -> dict[str, Any]:
    """`{items, next_cursor}` from up to `limit + 1` rows ordered by `(created_at, id)`."""
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["created_at"], last["id"])
    return {"items": [to_json(row) for row in items], "next_cursor": next_cursor}
