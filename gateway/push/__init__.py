"""Pushing events to users' sockets: the endpoint, the hub that routes to sockets, the journal
that lets a reconnecting client catch up."""
