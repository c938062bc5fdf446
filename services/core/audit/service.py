"""The audit log: who did what, when, from where, under which request and trace.

Each security event is one row, written in the transaction of the change it records where
there is one (so the change and its entry commit or roll back together), and one JSON log line
under the `audit` key once it is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from chassis.data import Db
from chassis.http import PRINCIPAL, REQUEST_ID, client_address, decode_cursor, page
from chassis.telemetry import current_ids
from services.core.audit import repository

log = logging.getLogger("relais.audit")


@dataclass(frozen=True)
class Origin:
    """Where an audited action came from: the client's address and agent, the request's id and
    its trace's id; a command line or a background task has no request."""

    address: str
    user_agent: str = ""
    request_id: str | None = None
    trace_id: str | None = None

    @classmethod
    def of(cls, request: web.Request) -> Origin:
        """The origin of an HTTP request."""
        return cls(
            address=client_address(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
            request_id=request.get(REQUEST_ID),
            trace_id=_trace_id(),
        )

    @classmethod
    def internal(cls, what: str) -> Origin:
        """The origin of an action taken by the stack itself or an operator's command."""
        return cls(address=what, trace_id=_trace_id())


def _trace_id() -> str | None:
    """The current trace's id (None where nothing traces)."""
    ids = current_ids()
    return ids[0] if ids else None


@dataclass(frozen=True)
class Actor:
    """Who acts (None: the stack itself) and from where: what an audited change records."""

    user_id: str | None
    origin: Origin

    @classmethod
    def of(cls, request: web.Request) -> Actor:
        """The authenticated caller of a request (None if it has none) and its origin."""
        principal = request.get(PRINCIPAL)
        return cls(principal.user_id if principal else None, Origin.of(request))

    async def record(
        self, db: Db, action: str, *, subject: Any = None, details: dict[str, Any] | None = None
    ) -> None:
        """Append `action` on `subject` by this actor."""
        await record(
            db, action, self.origin, actor_id=self.user_id, subject=subject, details=details
        )


async def record(
    db: Db,
    action: str,
    origin: Origin,
    *,
    actor_id: Any = None,
    subject: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry for `action` by `actor_id` (None: the stack or an anonymous client) on
    `subject`, and log it."""
    entry = {
        "action": action,
        "actor_id": None if actor_id is None else str(actor_id),
        "subject": None if subject is None else str(subject),
        "address": origin.address,
        "user_agent": origin.user_agent,
        "request_id": origin.request_id,
        "trace_id": origin.trace_id,
        "details": details or {},
    }
    row = await repository.insert_entry(db, entry)
    log.info(action, extra={"audit": {**entry, "id": str(row["id"]), "at": row["created_at"]}})


def entry_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public view of an audit entry."""
    found = dict(row)
    details = found["details"]
    found["details"] = json.loads(details) if isinstance(details, str) else details
    return found


async def entries(
    *,
    pool: asyncpg.Pool,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of the entries matching the filters, oldest first."""
    rows = await repository.entries_page(
        pool,
        actor=actor,
        action=action,
        since=since,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    return page(rows, limit, entry_json)
