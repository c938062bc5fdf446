"""Request and response bodies of the orders endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from chassis.http import JSON_INTEGER
from contracts import OrderStatus, PaymentStatus
from services.core.auth.schemas import Strict, examples
from services.core.users.schemas import PageQuery

ORDER_EXAMPLE = {
    "id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
    "status": "paid",
    "items": [
        {
            "product_id": "0b8e7d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
            "quantity": 2,
            "unit_price_cents": 4500,
        }
    ],
    "payments": [{"id": "7e6d5c4b-3a2f-4e1d-9c0b-a9f8e7d6c5b4", "status": "succeeded"}],
    "total_cents": 9000,
    "currency": "EUR",
    "created_at": "2026-12-03T10:15:00Z",
    "updated_at": "2026-12-03T10:15:00Z",
}


class OrderItemIn(Strict):
    product_id: UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000), JSON_INTEGER]


class OrderIn(Strict):
    model_config = examples(
        {"items": [{"product_id": "0b8e7d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "quantity": 2}]}
    )

    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _one_line_per_product(self) -> OrderIn:
        ids = [item.product_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("each product may appear in one line only")
        return self


class OrderItemOut(BaseModel):
    product_id: UUID
    quantity: int
    unit_price_cents: int


class OrderPaymentOut(BaseModel):
    """A payment of the order: `GET /api/payments/{id}` has the rest."""

    id: UUID
    status: PaymentStatus


class OrderOut(BaseModel):
    model_config = examples(ORDER_EXAMPLE)

    id: UUID
    status: OrderStatus
    items: list[OrderItemOut]
    payments: list[OrderPaymentOut]
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    model_config = examples({"items": [ORDER_EXAMPLE], "next_cursor": None})

    items: list[OrderOut]
    next_cursor: str | None


class OrderQuery(PageQuery):
    """`limit`, `cursor`, and which orders: the caller's, or every user's (`all`, admins)."""

    all: bool = False
    status: OrderStatus | None = None
