"""The gateway's broker rights: it consumes its own queues only, bound to the events on
`relais.events` that concern users (by type for its journal, by `user.<id>` for the sockets it
holds), and announces nothing. It owns no database."""

from __future__ import annotations

from chassis.messaging import ALL_EXCHANGES, DEFAULT, EVENTS, BrokerPermissions, names

OWN_QUEUES = r"gateway\..*"
BROKER = BrokerPermissions(
    configure=names(ALL_EXCHANGES, OWN_QUEUES),
    # Retries wait in its retry queues (through the default exchange); dead letters.
    write=names(r"relais\.dlx", DEFAULT, OWN_QUEUES),
    read=names(r"relais\.(events|dlx)", OWN_QUEUES),
    topics={EVENTS: ("^$", r"^(user|order|payment)\.")},
)
