"""The AI worker's broker rights: it serves the `ai.*` RPCs and nothing else (it has no
database role)."""

from __future__ import annotations

from chassis.messaging import ALL_EXCHANGES, DEFAULT, BrokerPermissions, names

RPC_QUEUES = r"rpc\.ai\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, RPC_QUEUES),
    # Replies go to each caller's reply queue through the default exchange.
    write=names(DEFAULT, RPC_QUEUES),
    read=names(r"relais\.rpc", RPC_QUEUES),
)
