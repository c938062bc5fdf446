"""HTTP views of the payments domain."""

from __future__ import annotations

import uuid

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import (
    ApiRoutes,
    Header,
    authenticated,
    json_body,
    json_response,
    path_uuid,
    query_params,
)
from services.core.audit.service import Actor
from services.core.checkout import commands
from services.core.checkout.schemas import (
    DailyReportOut,
    PaymentIn,
    PaymentList,
    PaymentOut,
    RefundIn,
    RefundOut,
    ReportQuery,
)
from services.core.idempotency import idempotency_key, key_header
from services.core.keys import CORE_SETTINGS, RPC_CLIENT, SETTLEMENTS

routes = ApiRoutes("payments")


def preferred_wait(request: web.Request, maximum: int) -> int | None:
    """The seconds of RFC 7240 `Prefer: wait=N`, capped at `maximum`; None if not asked.

    As the RFC's grammar has it: preferences are comma-separated, names are case-insensitive,
    whitespace may surround the `=` (`wait = 5`), the value may be a quoted string
    (`wait="5"`), and parameters may follow after `;`. The first `wait` counts."""
    for header in request.headers.getall("Prefer", []):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = value.strip()
            if len(seconds) >= 2 and seconds[0] == seconds[-1] == '"':
                seconds = seconds[1:-1].strip()
            valid = seconds.isascii() and seconds.isdigit() and len(seconds) <= 9
            return min(int(seconds), maximum) if valid else None
    return None


@routes.route(
    "POST",
    "/api/orders/{id}/payments",
    summary="Pay for an order (202 at once, or 200 once settled with Prefer: wait=N)",
    auth="user",
    body=PaymentIn,
    headers={
        "Idempotency-Key": key_header(required=True),
        "Prefer": Header("wait=N: wait up to N (≤ 30) seconds for the outcome"),
    },
    responses={
        200: PaymentOut,
        202: PaymentOut,
        403: "The account's e-mail address is not verified",
        404: None,
        409: None,
    },
    links=("get_payment", "refund_payment"),
)
async def pay_order(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    key = idempotency_key(request, required=True)
    data = await json_body(request, PaymentIn)
    settings, waiters = request.app[CORE_SETTINGS], request.app[SETTLEMENTS]
    wait = preferred_wait(request, settings.payment_wait_max)
    # Watch the new payment before it exists: its settlement cannot slip past unseen.
    payment_id = uuid.uuid4()
    async with waiters.waiting(str(payment_id)) as settlement:
        payment, replayed = await commands.start_payment(
            pool=request.app[DB_POOL],
            principal=principal,
            order_id=path_uuid(request),
            payment_method=data.payment_method,
            key=key or "",
            retention_hours=settings.idempotency_retention_hours,
            payment_id=payment_id,
        )
        headers = {"Location": f"/api/payments/{payment['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
            settlement.stop_watching()
        if wait is None:
            return json_response(payment, status=202, headers=headers)
        headers["Preference-Applied"] = f"wait={wait}"
        payment = await settlement.outcome(pool=request.app[DB_POOL], seconds=wait)
    status = 202 if payment["status"] == "processing" else 200
    return json_response(payment, status=status, headers=headers)


@routes.route(
    "GET",
    "/api/payments/reports/daily",
    summary="One UTC day's captured, refunded and net amounts per currency, from the ledger",
    auth="admin",
    query=ReportQuery,
    responses={200: DailyReportOut, 503: None, 504: None},
)
async def daily_report(request: web.Request) -> web.Response:
    query = query_params(request, ReportQuery)
    report = await commands.daily_report(
        rpc=request.app[RPC_CLIENT],
        day=query.date,
        deadline=request.app[CORE_SETTINGS].rpc_deadline,
    )
    return json_response(report)


@routes.route(
    "GET",
    "/api/payments/{id}",
    summary="One payment (its payer or an admin)",
    auth="user",
    responses={200: PaymentOut, 404: None},
)
async def get_payment(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    payment = await commands.get_payment(
        pool=request.app[DB_POOL], principal=principal, payment_id=path_uuid(request)
    )
    return json_response(payment)


@routes.route(
    "POST",
    "/api/payments/{id}/refunds",
    summary="Refund all (no amount) or part of a payment",
    auth="admin",
    body=RefundIn,
    body_required=False,
    headers={"Idempotency-Key": key_header(required=True)},
    responses={202: RefundOut, 404: None, 409: None},
)
async def refund_payment(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    key = idempotency_key(request, required=True)
    data = await json_body(request, RefundIn, optional=True)
    refund, replayed = await commands.start_refund(
        pool=request.app[DB_POOL],
        principal=principal,
        payment_id=path_uuid(request),
        amount_cents=data.amount_cents,
        key=key or "",
        retention_hours=request.app[CORE_SETTINGS].idempotency_retention_hours,
        actor=Actor.of(request),
    )
    headers = {"Location": f"/api/payments/{refund['payment_id']}/refunds/{refund['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(refund, status=202, headers=headers)


@routes.route(
    "GET",
    "/api/payments/{id}/refunds/{refund_id}",
    summary="One refund of a payment (its payer or an admin)",
    auth="user",
    responses={200: RefundOut, 404: None},
)
async def get_refund(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    refund = await commands.get_refund(
        pool=request.app[DB_POOL],
        principal=principal,
        payment_id=path_uuid(request),
        refund_id=path_uuid(request, "refund_id"),
    )
    return json_response(refund)


@routes.route(
    "GET",
    "/api/orders/{id}/payments",
    summary="The payments of an order, oldest first (its owner or an admin)",
    auth="user",
    responses={200: PaymentList, 404: None},
)
async def order_payments(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    payments = await commands.order_payments(
        pool=request.app[DB_POOL], principal=principal, order_id=path_uuid(request)
    )
    return json_response(payments)
