"""Game days: every alert proven by the fault it exists for (`make gameday`).

A stack of the game day's own (`devstack up` on free ports, with its own database, vhost and key
prefix) reaches PostgreSQL, Redis and RabbitMQ through fault proxies of the game day's
(`devstack.faults.TcpProxy`): the machine's servers are shared, so "stopped" is every connection
closed and every new one refused, which is what the stack sees of a stopped server. Prometheus
runs the shipped rules on a faster clock (`ALERT_TIME_SCALE`, sixty: an hour's window lasts a
minute) and Alertmanager posts to the stack's local receiver, which records what arrived.

Customers keep browsing, ordering and paying through NGINX (`trickle`) while the catalogue of
faults (`catalogue`) runs one at a time: each is injected, held until its expected alerts fire
(bounded), restored, and the stack is checked (nothing lost, every payment settled once, the
ledger balanced) before the next. `watch` records every alert's life: when it fired in
Prometheus, which receiver took it (page or ticket) or which alert inhibited it, and when it
resolved. `report` writes the record as Markdown under `var/reports/`.

    python -m scripts.gameday [--faults NAME,...] [--out FOLDER] [--publish FILE]
"""
