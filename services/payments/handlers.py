"""What the payments service does with each message it accepts: a table from contract to
function. `app.py` wires the tables to queues; the functions live in `service.py`."""

from __future__ import annotations

from collections.abc import Mapping

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel

from chassis.data import DB_POOL, read_tolerating_lag
from chassis.messaging import AppMessageHandler, AppRpcHandler
from contracts import (
    ChargePayment,
    DailyReport,
    DailyReportRequest,
    ProviderEvent,
    ProviderEventV1,
    RefundPayment,
)
from services.payments import service
from services.payments.keys import PROVIDER


async def charge(
    app: web.Application, command: ChargePayment, message: AbstractIncomingMessage
) -> None:
    """Charge the payment at the provider once."""
    await service.charge(
        pool=app[DB_POOL],
        provider=app[PROVIDER],
        command=command,
        message_id=message.message_id or "",
    )


async def refund(
    app: web.Application, command: RefundPayment, message: AbstractIncomingMessage
) -> None:
    """Refund at the provider once."""
    await service.refund(
        pool=app[DB_POOL],
        provider=app[PROVIDER],
        command=command,
        message_id=message.message_id or "",
    )


async def provider_event(
    app: web.Application, event: ProviderEvent, message: AbstractIncomingMessage
) -> None:
    """Act on a verified provider webhook once."""
    await service.provider_event(
        pool=app[DB_POOL], provider=app[PROVIDER], event=event, message_id=message.message_id or ""
    )


async def provider_event_v1(
    app: web.Application, event: ProviderEventV1, message: AbstractIncomingMessage
) -> None:
    """A webhook forwarded before v2, read as a v2 event that names no amount."""
    await provider_event(app, ProviderEvent.from_v1(event), message)


async def daily_report(app: web.Application, request: DailyReportRequest) -> DailyReport:
    """One UTC day's ledger totals."""
    # A report of past days' ledger tolerates the replica's lag.
    return await read_tolerating_lag(
        app, lambda pool: service.daily_report(pool=pool, request=request)
    )


# The command queue: commands from core, and the webhooks this service takes itself.
COMMAND_QUEUE = "payments.commands"
COMMANDS: Mapping[type[BaseModel], AppMessageHandler] = {
    ChargePayment: charge,
    RefundPayment: refund,
    ProviderEvent: provider_event,
    ProviderEventV1: provider_event_v1,
}
# The RPCs served, each on the method named by its request's type.
RPCS: Mapping[type[BaseModel], AppRpcHandler] = {DailyReportRequest: daily_report}
