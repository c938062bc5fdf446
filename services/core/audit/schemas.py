"""Query and response bodies of the audit log's endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chassis.http import Cursor, IsoDateTime
from services.core.auth.schemas import examples

ENTRY_EXAMPLE = {
    "id": "0b6f4f8e-3c1a-4e55-9d1e-4a8c5f2b7d10",
    "created_at": "2026-12-05T09:30:00Z",
    "action": "auth.login.failed",
    "actor_id": "4f6c1d2e-8a3b-4c5d-9e7f-1a2b3c4d5e6f",
    "subject": "ada@example.com",
    "address": "203.0.113.7",
    "user_agent": "Mozilla/5.0",
    "request_id": "9f2c4e1a7b3d4c5e8f9a0b1c2d3e4f5a",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "details": {"reason": "wrong password"},
}


class AuditQuery(BaseModel):
    """The filters of the audit log: who, what, since when; and the page."""

    model_config = ConfigDict(extra="forbid")

    actor: UUID | None = None
    action: Annotated[str | None, Field(pattern=r"^[a-z0-9_.]{1,64}$")] = None
    since: IsoDateTime | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Cursor = None


class AuditEntry(BaseModel):
    model_config = examples(ENTRY_EXAMPLE)

    id: UUID
    created_at: datetime
    action: str
    actor_id: UUID | None
    subject: str | None
    address: str | None
    user_agent: str | None
    request_id: str | None
    trace_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    model_config = examples({"items": [ENTRY_EXAMPLE], "next_cursor": None})

    items: list[AuditEntry]
    next_cursor: str | None
