"""The shared vocabulary of states: one type each, which the tables' CHECK constraints match."""

from __future__ import annotations

from typing import Literal, get_args

OrderStatus = Literal["pending_payment", "paid", "payment_failed", "cancelled", "refunded"]
PaymentStatus = Literal["processing", "succeeded", "failed", "partially_refunded", "refunded"]
RefundStatus = Literal["pending", "succeeded", "failed"]
# What a provider says of a charge or refund it was asked for.
ProviderStatus = Literal["succeeded", "failed", "processing"]

ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
PAYMENT_STATUSES: tuple[str, ...] = get_args(PaymentStatus)
REFUND_STATUSES: tuple[str, ...] = get_args(RefundStatus)
