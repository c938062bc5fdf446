"""Request and response bodies of the payments endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from chassis.http import IsoDate
from contracts import PaymentStatus, RefundStatus
from services.core.auth.schemas import Strict
from services.core.fields import JsonAmount


class PaymentIn(Strict):
    payment_method: Annotated[str, Field(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_]+$")]


class PaymentOut(BaseModel):
    id: UUID
    order_id: UUID
    status: PaymentStatus
    amount_cents: int
    refunded_cents: int
    currency: str
    failure_code: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class RefundIn(Strict):
    amount_cents: JsonAmount | None = None


class RefundOut(BaseModel):
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
    date: dt.date
    currencies: list[CurrencyTotalsOut]
