"""The AI worker's broker rights: it serves the `ai.*` RPCs and consumes its own queues, bound
to the catalog's and orders' events (it announces nothing). Its database role owns the `ai`
schema and reads core's products (core's `migrate --grant`)."""

from __future__ import annotations

from chassis.messaging import ALL_EXCHANGES, DEFAULT, EVENTS, BrokerPermissions, names

RPC_QUEUES = r"rpc\.ai\..*"
OWN_QUEUES = r"ai\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, RPC_QUEUES, OWN_QUEUES),
    # Replies go to each caller's reply queue through the default exchange; retries too.
    write=names(r"relais\.dlx", DEFAULT, RPC_QUEUES, OWN_QUEUES),
    read=names(r"relais\.(rpc|events|dlx)", RPC_QUEUES, OWN_QUEUES),
    topics={EVENTS: ("^$", r"^(product|order)\.")},
)
