"""SQL of webhook intake: the events taken, by provider and event id."""

from __future__ import annotations

from chassis.data import Conn


async def record_webhook(conn: Conn, *, provider: str, event_id: str, event_type: str) -> bool:
    """Remember a provider's event; False if it was seen before."""
    inserted = await conn.fetchval(
        """INSERT INTO webhook_events (provider, event_id, event_type) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        provider,
        event_id,
        event_type,
    )
    return bool(inserted)
