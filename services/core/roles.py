"""Core's broker user: what it may declare, publish and consume in the stack's vhost.

Core publishes commands (`relais.commands`), RPC requests (`relais.rpc`), retries (through the
default exchange) and dead letters (`relais.dlx`), and consumes its own queues (its RPC reply
queue, `core.replies.…`, among them). It may not publish to `relais.events`: only the
service that owns a fact announces it, so core cannot claim that a payment succeeded.
"""

from __future__ import annotations

from chassis.messaging import ALL_EXCHANGES, DEFAULT, EVENTS, BrokerPermissions, names

OWN_QUEUES = r"core\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, OWN_QUEUES),
    write=names(r"relais\.(commands|rpc|dlx)", DEFAULT, OWN_QUEUES),
    read=names(r"relais\.(events|dlx)", OWN_QUEUES),
    topics={EVENTS: ("^$", r"^payment\.")},
)
