"""SQL of the audit log (append-only: the application's role may only insert and read)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from chassis.data import Db
from chassis.http import Position

COLUMNS = (
    "id, created_at, action, actor_id, subject, address, user_agent, request_id, trace_id, details"
)


async def insert_entry(db: Db, entry: dict[str, Any]) -> asyncpg.Record:
    """Append one entry."""
    row = await db.fetchrow(
        f"""INSERT INTO audit_log (action, actor_id, subject, address, user_agent, request_id,
                                   trace_id, details)
            VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8::jsonb) RETURNING {COLUMNS}""",
        entry["action"],
        entry["actor_id"],
        entry["subject"],
        entry["address"],
        entry["user_agent"],
        entry["request_id"],
        entry["trace_id"],
        json.dumps(entry["details"]),
    )
    assert row is not None
    return row


async def entries_page(
    db: Db,
    *,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    after: Position | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` entries matching the filters after `after`, in (created_at, id) order."""
    created_at, row_id = after or (None, None)
    return await db.fetch(
        f"""SELECT {COLUMNS} FROM audit_log
            WHERE ($1::uuid IS NULL OR actor_id = $1)
              AND ($2::text IS NULL OR action = $2)
              AND ($3::timestamptz IS NULL OR created_at >= $3)
              AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))
            ORDER BY created_at, id LIMIT $6""",
        actor,
        action,
        since,
        created_at,
        row_id,
        limit,
    )
