"""Placing, reading and cancelling orders; stock is reserved in the order's transaction, and a
cancellation is announced in its own (to the buyer's sockets too)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import asyncpg

from chassis.data import Conn, Db, TieredCache
from chassis.errors import Conflict, Forbidden, NotFound, Unprocessable
from chassis.http import Principal, decode_cursor, page
from chassis.messaging import announce
from contracts import OrderCancelled
from services.core import idempotency
from services.core.idempotency import IdempotentRequest, fingerprint
from services.core.orders import repository
from services.core.orders.schemas import OrderItemIn

CANCELLABLE = frozenset({"pending_payment", "payment_failed"})


def order_json(
    order: asyncpg.Record,
    items: Sequence[Mapping[str, Any] | asyncpg.Record],
    payments: Sequence[Mapping[str, Any] | asyncpg.Record] = (),
) -> dict[str, Any]:
    """The public view of an order, its lines and its payments (ids and statuses)."""
    return {
        "id": order["id"],
        "status": order["status"],
        "items": [
            {key: item[key] for key in ("product_id", "quantity", "unit_price_cents")}
            for item in items
        ],
        "payments": [{"id": payment["id"], "status": payment["status"]} for payment in payments],
        "total_cents": order["total_cents"],
        "currency": order["currency"],
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


async def create_order(
    *,
    pool: asyncpg.Pool,
    cache: TieredCache,
    user_id: str,
    lines: list[OrderItemIn],
    idempotency_key: str | None,
    retention_hours: int,
) -> tuple[dict[str, Any], bool]:
    """Reserve stock and place an order, or replay the key's first outcome: (order, replayed)."""
    product_ids = [line.product_id for line in lines]
    keyed = None
    if idempotency_key is not None:
        canonical = sorted((str(line.product_id), line.quantity) for line in lines)
        keyed = IdempotentRequest(user_id, idempotency_key, fingerprint("order", canonical))
    async with pool.acquire() as conn, conn.transaction():
        if keyed is not None:
            replay = await idempotency.claim(conn, keyed, retention_hours=retention_hours)
            if replay is not None:
                return replay.body, True
        products = {
            row["id"]: row
            for row in await repository.lock_products(conn, product_ids, live_only=True)
        }
        _check_orderable(lines, products)
        await repository.adjust_stock(conn, product_ids, [-line.quantity for line in lines])
        priced = [
            (line.product_id, line.quantity, products[line.product_id]["price_cents"])
            for line in lines
        ]
        order = await repository.insert_order(
            conn,
            user_id=user_id,
            total_cents=sum(quantity * price for _, quantity, price in priced),
            currency=products[product_ids[0]]["currency"],
            lines=priced,
        )
        lines_out = [
            {"product_id": pid, "quantity": quantity, "unit_price_cents": price}
            for pid, quantity, price in sorted(priced, key=lambda line: str(line[0]))
        ]
        result = order_json(order, lines_out)
        if keyed is not None:
            await idempotency.remember(conn, keyed, 201, result)
        await cache.record(conn, *(str(pid) for pid in product_ids))
    await cache.invalidate(*(str(pid) for pid in product_ids))
    return result, False


def _check_orderable(lines: list[OrderItemIn], products: dict[Any, asyncpg.Record]) -> None:
    unknown = [str(line.product_id) for line in lines if line.product_id not in products]
    if unknown:
        raise Unprocessable(
            "Some products do not exist",
            extra={
                "errors": [
                    {"field": "items.product_id", "message": f"unknown product {pid}"}
                    for pid in unknown
                ]
            },
        )
    currencies = {row["currency"] for row in products.values()}
    if len(currencies) > 1:
        raise Unprocessable(
            "All products of an order must share one currency",
            extra={
                "errors": [{"field": "items", "message": f"mixed currencies: {sorted(currencies)}"}]
            },
        )
    short = [
        str(line.product_id) for line in lines if products[line.product_id]["stock"] < line.quantity
    ]
    if short:
        raise Conflict("Not enough stock", extra={"product_ids": short})


def _visible(order: asyncpg.Record | None, principal: Principal) -> asyncpg.Record:
    if order is None or (str(order["user_id"]) != principal.user_id and principal.role != "admin"):
        raise NotFound("No such order")
    return order


async def get_order(*, pool: asyncpg.Pool, principal: Principal, order_id: str) -> dict[str, Any]:
    """An order its owner or an admin may see."""
    order = _visible(await repository.order_by_id(pool, order_id), principal)
    return (await _with_lines(pool, [order]))[0]


async def _with_lines(db: Db, orders: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    """The public views of `orders`, with their lines and payments (two queries in all)."""
    ids = [order["id"] for order in orders]
    lines: dict[Any, list[asyncpg.Record]] = defaultdict(list)
    payments: dict[Any, list[asyncpg.Record]] = defaultdict(list)
    for item in await repository.items_of(db, ids):
        lines[item["order_id"]].append(item)
    for payment in await repository.payments_of(db, ids):
        payments[payment["order_id"]].append(payment)
    return [order_json(order, lines[order["id"]], payments[order["id"]]) for order in orders]


async def list_orders(
    *,
    pool: asyncpg.Pool,
    principal: Principal,
    every_user: bool,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of the caller's orders (every user's for an admin asking `every_user`), newest
    first, of one status if given."""
    if every_user and principal.role != "admin":
        raise Forbidden("Only an admin may list every user's orders")
    rows = await repository.orders_page(
        pool,
        user_id=None if every_user else principal.user_id,
        status=status,
        before=decode_cursor(cursor),
        limit=limit + 1,
    )
    views = {view["id"]: view for view in await _with_lines(pool, rows[:limit])}
    return page(rows, limit, lambda row: views[row["id"]])


async def cancel_order(
    *, pool: asyncpg.Pool, cache: TieredCache, principal: Principal, order_id: str
) -> dict[str, Any]:
    """Cancel an unpaid order and return its stock; cancelling twice is a no-op."""
    async with pool.acquire() as conn, conn.transaction():
        order = _visible(await repository.order_for_update(conn, order_id), principal)
        if order["status"] == "cancelled":
            return (await _with_lines(conn, [order]))[0]
        if order["status"] not in CANCELLABLE:
            raise Conflict(f"An order that is {order['status']} cannot be cancelled")
        if await repository.has_payment_in_progress(conn, order["id"]):
            raise Conflict("A payment of this order is in progress")
        order, items = await _release(conn, order, reason="buyer")
        await cache.record(conn, *(str(item["product_id"]) for item in items))
        view = (await _with_lines(conn, [order]))[0]
    await cache.invalidate(*(str(item["product_id"]) for item in items))
    return view


async def release_unpaid_orders(
    *, pool: asyncpg.Pool, cache: TieredCache, hold_seconds: float, limit: int = 100
) -> int:
    """Cancel orders left unpaid past the hold and return their stock; how many."""
    async with pool.acquire() as conn, conn.transaction():
        orders = await repository.unpaid_orders_past_hold(
            conn, hold_seconds=hold_seconds, limit=limit
        )
        released = [
            await _release(conn, order, reason="unpaid")
            for order in orders
            # The selection saw the payments of its own snapshot; one started since then (it
            # does not touch the order row) shows now that the order is locked.
            if not await repository.has_payment_in_progress(conn, order["id"])
        ]
        product_ids = {str(item["product_id"]) for _, items in released for item in items}
        if product_ids:
            await cache.record(conn, *product_ids)
    if product_ids:
        await cache.invalidate(*product_ids)
    return len(released)


async def _release(
    conn: Conn, order: asyncpg.Record, *, reason: Literal["buyer", "unpaid"]
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """Cancel a locked order, put its stock back and tell its buyer: (cancelled order, its
    lines)."""
    items = await repository.items_of(conn, [order["id"]])
    product_ids = sorted(item["product_id"] for item in items)
    quantities = {item["product_id"]: item["quantity"] for item in items}
    await repository.lock_products(conn, product_ids, live_only=False)
    await repository.adjust_stock(conn, product_ids, [quantities[pid] for pid in product_ids])
    cancelled = await repository.set_status(conn, order["id"], "cancelled")
    event = OrderCancelled(
        order_id=cancelled["id"],
        user_id=cancelled["user_id"],
        reason=reason,
        cancelled_at=cancelled["updated_at"],
    )
    await announce(conn, event, about=(event.order_id,), to_user=event.user_id)
    return cancelled, items
