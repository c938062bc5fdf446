"""The worker's roles: its database role may write payments but only append to the ledger; its
broker user consumes payment commands and RPC requests and announces payment events only (each
copied to its buyer's `user.…` key).
"""

from __future__ import annotations

from chassis.data import Conn, apply_grants
from chassis.messaging import ALL_EXCHANGES, DEFAULT, EVENTS, BrokerPermissions, names

OWN_QUEUES = r"payments\..*"
RPC_QUEUES = r"rpc\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, OWN_QUEUES, RPC_QUEUES),
    write=names(r"relais\.(events|dlx)", DEFAULT, OWN_QUEUES, RPC_QUEUES),
    read=names(r"relais\.(commands|rpc|dlx)", OWN_QUEUES, RPC_QUEUES),
    # The events exchange takes from it payment events and nothing else.
    topics={EVENTS: (r"^(payment|user)\.", "^$")},
)

SCHEMA = "payments"
# No UPDATE, DELETE or TRUNCATE on the ledger: entries are facts, corrections are new entries.
GRANTS = """
    GRANT USAGE ON SCHEMA {schema} TO {role};
    GRANT SELECT, INSERT, UPDATE ON {schema}.payments, {schema}.refunds TO {role};
    GRANT SELECT, INSERT ON {schema}.ledger_transactions, {schema}.ledger_entries TO {role};
    GRANT SELECT, INSERT ON {schema}.webhook_events TO {role};
    GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.outbox, {schema}.processed_messages TO {role};
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}
"""


async def grant_worker_role(conn: Conn, role: str, schema: str = SCHEMA) -> None:
    """Give the worker's role exactly what it needs on its schema (idempotent)."""
    await apply_grants(conn, GRANTS, role=role, schema=schema)
