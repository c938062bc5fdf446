"""Contracts: every message that crosses a service boundary, versioned, and the shared vocabulary.

Imports pydantic and the standard library only; services import this package's root.

- `Contract`: the base of every message (frozen, no unknown fields, `type` and `version` in the
  body; no two contracts claim the same pair).
- Payments (`relais.commands`, routing key = type): `ChargePayment`, `RefundPayment`,
  `ProviderEvent` (v2; `ProviderEventV1` still decoded); events (`relais.events`):
  `PaymentSucceeded`, `PaymentFailed`, `PaymentRefunded`, `RefundFailed`; RPC (`relais.rpc`):
  `DailyReportRequest` answered by `DailyReport`. `settlement_outcome` sorts a failure into the
  customer's decline (`DECLINE_CODES`) or the platform's failure.
- AI (RPC, `relais.rpc`): `TextAnalysisRequest` answered by `TextAnalysis`.
- Money: `CURRENCIES` (ISO 4217 minor-unit exponents), `Amount`, `Currency`, `decimal_amount`.
- Statuses: `OrderStatus`, `PaymentStatus`, `RefundStatus`, `ProviderStatus`.
"""

from contracts._ai import MAX_TEXT, Sentiment, TextAnalysis, TextAnalysisRequest
from contracts._base import Contract
from contracts._money import CURRENCIES, MAX_AMOUNT, Amount, Currency, decimal_amount, exponent
from contracts._payments import (
    DECLINE_CODES,
    SETTLEMENT_OUTCOMES,
    TEST_TOKENS,
    ChargePayment,
    CurrencyTotals,
    DailyReport,
    DailyReportRequest,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    ProviderEvent,
    ProviderEventV1,
    RefundFailed,
    RefundPayment,
    settlement_outcome,
)
from contracts._statuses import (
    ORDER_STATUSES,
    PAYMENT_STATUSES,
    REFUND_STATUSES,
    OrderStatus,
    PaymentStatus,
    ProviderStatus,
    RefundStatus,
)

__all__ = [
    "CURRENCIES",
    "DECLINE_CODES",
    "MAX_AMOUNT",
    "MAX_TEXT",
    "ORDER_STATUSES",
    "PAYMENT_STATUSES",
    "REFUND_STATUSES",
    "SETTLEMENT_OUTCOMES",
    "TEST_TOKENS",
    "Amount",
    "ChargePayment",
    "Contract",
    "Currency",
    "CurrencyTotals",
    "DailyReport",
    "DailyReportRequest",
    "OrderStatus",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentStatus",
    "PaymentSucceeded",
    "ProviderEvent",
    "ProviderEventV1",
    "ProviderStatus",
    "RefundFailed",
    "RefundPayment",
    "RefundStatus",
    "Sentiment",
    "TextAnalysis",
    "TextAnalysisRequest",
    "decimal_amount",
    "exponent",
    "settlement_outcome",
]
