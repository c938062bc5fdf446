"""HTTP views of the orders domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import ApiRoutes, authenticated, json_body, json_response, path_uuid, query_params
from services.core.idempotency import idempotency_key, key_header
from services.core.keys import CHECKOUT_METRICS, CORE_SETTINGS, PRODUCT_CACHE
from services.core.orders import service
from services.core.orders.schemas import OrderIn, OrderOut, OrderPage, OrderQuery

routes = ApiRoutes("orders")


@routes.route(
    "POST",
    "/api/orders",
    summary="Place an order, reserving stock",
    auth="user",
    body=OrderIn,
    headers={"Idempotency-Key": key_header(required=False)},
    responses={201: OrderOut, 409: None},
    links=("get_order", "cancel_order", "pay_order"),
)
async def create_order(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    key = idempotency_key(request)
    data = await json_body(request, OrderIn)
    order, replayed = await service.create_order(
        pool=request.app[DB_POOL],
        cache=request.app[PRODUCT_CACHE],
        user_id=principal.user_id,
        lines=data.items,
        idempotency_key=key,
        retention_hours=request.app[CORE_SETTINGS].idempotency_retention_hours,
    )
    headers = {"Location": f"/api/orders/{order['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    else:
        request.app[CHECKOUT_METRICS].order_created(order["currency"])
    return json_response(order, status=201, headers=headers)


@routes.route(
    "GET",
    "/api/orders",
    summary="The caller's orders, newest first (every user's with all=true, admins only), "
    "optionally of one status",
    auth="user",
    query=OrderQuery,
    responses={200: OrderPage, 403: None},
)
async def list_orders(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    query = query_params(request, OrderQuery)
    result = await service.list_orders(
        pool=request.app[DB_POOL],
        principal=principal,
        every_user=query.all,
        status=query.status,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(result)


@routes.route(
    "GET",
    "/api/orders/{id}",
    summary="One order (owner or admin)",
    auth="user",
    responses={200: OrderOut, 404: None},
)
async def get_order(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    order = await service.get_order(
        pool=request.app[DB_POOL], principal=principal, order_id=path_uuid(request)
    )
    return json_response(order)


@routes.route(
    "POST",
    "/api/orders/{id}/cancel",
    summary="Cancel an unpaid order",
    auth="user",
    responses={200: OrderOut, 404: None, 409: None},
)
async def cancel_order(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    order = await service.cancel_order(
        pool=request.app[DB_POOL],
        cache=request.app[PRODUCT_CACHE],
        principal=principal,
        order_id=path_uuid(request),
    )
    return json_response(order)
