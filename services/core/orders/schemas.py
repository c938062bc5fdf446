"""Request and response bodies of the orders endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from chassis.http import JSON_INTEGER
from contracts import OrderStatus
from services.core.auth.schemas import Strict


class OrderItemIn(Strict):
    product_id: UUID
    quantity: Annotated[int, Field(strict=True, ge=1, le=10_000), JSON_INTEGER]


class OrderIn(Strict):
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


class OrderOut(BaseModel):
    id: UUID
    status: OrderStatus
    items: list[OrderItemOut]
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None
