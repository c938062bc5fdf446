"""Settings of the realtime gateway."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from chassis.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """The gateway's settings: the chassis' plus how it keeps sockets alive and bounded."""

    # It verifies core's access tokens (public key only) and owns no database.
    signs_jwt: ClassVar[bool] = False
    uses_database: ClassVar[bool] = False

    service_name: str = "gateway"
    http_port: int = Field(8401, ge=0, le=65535)
    metrics_port: int = Field(9401, ge=0, le=65535)
    # A ping every this many seconds; a peer that has not answered within half of it is dropped.
    gateway_heartbeat: float = Field(30.0, gt=0)
    # Messages a socket may have waiting to be sent: a client that falls further behind is
    # dropped (close code 1013) instead of growing the gateway's memory.
    gateway_send_queue: int = Field(64, ge=1)
    # What a reconnecting client may catch up on (`last_event_id`): the last this-many seconds
    # of its events, at most `gateway_replay_max` of them.
    gateway_replay_window: float = Field(300.0, gt=0)
    gateway_replay_max: int = Field(1000, ge=1)
    # How long the journal may take to record an event announced just before a reconnecting
    # client's socket was routed here (it is read after that).
    gateway_resume_settle: float = Field(0.1, ge=0)
    # How often open sockets' tokens are checked again (expired, revoked: the socket closes).
    gateway_auth_check_interval: float = Field(15.0, gt=0)
    # Sockets one user may hold on one instance (tabs, devices); one more is refused (429).
    gateway_sockets_per_user: int = Field(32, ge=1)
    # Events taken from the broker at once.
    gateway_prefetch: int = Field(256, ge=1)
