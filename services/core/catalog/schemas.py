"""Request and response bodies of the catalog endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from chassis.http import JSON_INTEGER, Cursor, Text, partial_update_schema
from contracts import Currency
from services.core.auth.schemas import Strict, examples
from services.core.fields import JsonAmount

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Description = Annotated[str, Field(max_length=5000)]
Stock = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1), JSON_INTEGER]


PRODUCT_IN_EXAMPLE: dict[str, object] = {
    "sku": "TEA-001",
    "name": "Cast-iron teapot",
    "description": "A 0.8 l teapot that keeps tea hot.",
    "price_cents": 4500,
    "currency": "EUR",
    "stock": 40,
    "category": "kitchen",
}
PRODUCT_EXAMPLE = {
    "id": "0b8e7d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
    **PRODUCT_IN_EXAMPLE,
    "created_at": "2026-12-03T10:15:00Z",
    "updated_at": "2026-12-03T10:15:00Z",
}


class ProductIn(Strict):
    model_config = examples(PRODUCT_IN_EXAMPLE)

    sku: Sku
    name: Text
    description: Description = ""
    price_cents: JsonAmount
    currency: Currency
    stock: Stock
    category: Text


def _patch_schema(schema: dict[str, Any]) -> None:
    partial_update_schema(schema)
    schema["examples"] = [{"price_cents": 3900, "stock": 55}]


class ProductPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    sku: Sku | None = None
    name: Text | None = None
    description: Description | None = None
    price_cents: JsonAmount | None = None
    currency: Currency | None = None
    stock: Stock | None = None
    category: Text | None = None

    @model_validator(mode="after")
    def _some_field_set(self) -> ProductPatch:
        changes = self.model_dump(exclude_unset=True)
        if not changes:
            raise ValueError("set at least one field")
        if any(value is None for value in changes.values()):
            raise ValueError("fields cannot be set to null")
        return self


class ProductQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Annotated[str | None, StringConstraints(min_length=1, max_length=200)] = None
    category: Annotated[str | None, StringConstraints(min_length=1, max_length=200)] = None
    min_price: Annotated[int | None, Field(ge=0, le=10**12)] = None
    max_price: Annotated[int | None, Field(ge=0, le=10**12)] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Cursor = None


class ProductOut(BaseModel):
    model_config = examples(PRODUCT_EXAMPLE)

    id: UUID
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    category: str
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    model_config = examples({"items": [PRODUCT_EXAMPLE], "next_cursor": None})

    items: list[ProductOut]
    next_cursor: str | None
