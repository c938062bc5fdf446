"""Request and response bodies of the payments endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from chassis.http import IsoDate
from contracts import TEST_TOKENS, PaymentStatus, RefundStatus
from services.core.auth.schemas import Strict, examples
from services.core.fields import JsonAmount

PAYMENT_EXAMPLE = {
    "id": "7e6d5c4b-3a2f-4e1d-9c0b-a9f8e7d6c5b4",
    "order_id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
    "status": "succeeded",
    "amount_cents": 9000,
    "refunded_cents": 0,
    "currency": "EUR",
    "failure_code": None,
    "created_at": "2026-12-03T10:15:00Z",
    "updated_at": "2026-12-03T10:15:00Z",
}
REFUND_EXAMPLE = {
    "id": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
    "payment_id": "7e6d5c4b-3a2f-4e1d-9c0b-a9f8e7d6c5b4",
    "amount_cents": 4500,
    "status": "pending",
    "failure_code": None,
    "created_at": "2026-12-03T10:15:00Z",
    "updated_at": "2026-12-03T10:15:00Z",
}


class PaymentIn(Strict):
    model_config = examples(*({"payment_method": token} for token in TEST_TOKENS))

    payment_method: Annotated[
        str,
        Field(
            min_length=3,
            max_length=100,
            pattern=r"^[A-Za-z0-9_]+$",
            description="A provider's payment method token. The sandbox's test tokens: "
            + "; ".join(f"`{token}` {what}" for token, what in TEST_TOKENS.items()),
            examples=list(TEST_TOKENS),
        ),
    ]


class PaymentOut(BaseModel):
    model_config = examples(PAYMENT_EXAMPLE)

    id: UUID
    order_id: UUID
    status: PaymentStatus
    amount_cents: int
    refunded_cents: int
    currency: str
    failure_code: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PaymentList(BaseModel):
    model_config = examples({"items": [PAYMENT_EXAMPLE]})

    items: list[PaymentOut]


class RefundIn(Strict):
    model_config = examples({"amount_cents": 4500}, {})

    amount_cents: JsonAmount | None = None


class RefundOut(BaseModel):
    model_config = examples(REFUND_EXAMPLE)

    id: UUID
    payment_id: UUID
    amount_cents: int
    status: RefundStatus
    failure_code: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ReportQuery(Strict):
    date: IsoDate


class CurrencyTotalsOut(BaseModel):
    currency: str
    captured_cents: int
    refunded_cents: int
    net_cents: int
    count: int


class DailyReportOut(BaseModel):
    model_config = examples(
        {
            "date": "2026-12-03",
            "currencies": [
                {
                    "currency": "EUR",
                    "captured_cents": 90000,
                    "refunded_cents": 4500,
                    "net_cents": 85500,
                    "count": 10,
                }
            ],
        }
    )

    date: dt.date
    currencies: list[CurrencyTotalsOut]
