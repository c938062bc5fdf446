"""Core's broker user: what it may declare, publish and consume in the stack's vhost.

Core publishes commands (`relais.commands`), RPC requests (`relais.rpc`), retries (through the
default exchange) and dead letters (`relais.dlx`), and consumes its own queues (its RPC reply
queue, `core.replies.…`, among them). On `relais.events` it announces its own facts only
(`product.…`, `order.…`), copied to the buyer's `user.…` key: only the service that owns a fact
announces it, so core cannot claim that a payment succeeded.

Its database role also lets the AI worker's role read the catalog (`grant_catalog_reader`): the
worker rebuilds its search index from the products as they are.
"""

from __future__ import annotations

from chassis.data import Conn, apply_grants
from chassis.messaging import ALL_EXCHANGES, DEFAULT, EVENTS, BrokerPermissions, names

OWN_QUEUES = r"core\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, OWN_QUEUES),
    write=names(r"relais\.(commands|rpc|events|dlx)", DEFAULT, OWN_QUEUES),
    read=names(r"relais\.(events|dlx)", OWN_QUEUES),
    topics={EVENTS: (r"^(product|order|user)\.", r"^payment\.")},
)

CATALOG_GRANTS = """
    GRANT USAGE ON SCHEMA {schema} TO {role};
    GRANT SELECT ON {schema}.products TO {role}
"""


async def grant_catalog_reader(conn: Conn, role: str, schema: str) -> None:
    """Let `role` read the products (idempotent)."""
    await apply_grants(conn, CATALOG_GRANTS, role=role, schema=schema)
