"""Opaque keyset-pagination cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from chassis.problems import Unprocessable

Position = tuple[datetime, UUID]


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """The cursor that resumes after the row `(created_at, id)`."""
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor names; 422 if it is not one this API issued."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise Unprocessable(
            "The cursor is not valid", extra={"errors": [{"field": "cursor", "message": str(exc)}]}
        ) from exc


def page(rows: list[Any], limit: int, to_json: Any) -> dict[str, Any]:
    """`{items, next_cursor}` from up to `limit + 1` rows ordered by `(created_at, id)`."""
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["created_at"], last["id"])
    return {"items": [to_json(row) for row in items], "next_cursor": next_cursor}
