"""Contracts: every message that crosses a service boundary, versioned, and the shared vocabulary.

Imports pydantic and the standard library only; services import this package's root.

- `Contract`: the base of every message (frozen, no unknown fields, `type` and `version` in the
  body; no two contracts claim the same pair).
- Payments (`relais.commands`, routing key = type): `ChargePayment`, `RefundPayment`,
  `ProviderEvent` (v2; `ProviderEventV1` still decoded); events (`relais.events`):
  `PaymentSucceeded`, `PaymentFailed`, `PaymentRefunded`, `RefundFailed`; RPC (`relais.rpc`):
  `DailyReportRequest` answered by `DailyReport`. `settlement_outcome` sorts a failure into the
  customer's decline (`DECLINE_CODES`) or the platform's failure.
- AI (RPC, `relais.rpc`): `TextAnalysisRequest`, `ImageAnalysisRequest`, `AudioAnalysisRequest`
  answered by `TextAnalysis`, `ImageAnalysis`, `AudioAnalysis`; their files travel as `Media`
  (inline up to `INLINE_MEDIA_MAX`, else by a Redis claim check); `SearchRequest` answered by
  `SearchResults`, `RecommendationsRequest` answered by `Recommendations`.
- Catalog (`relais.events`, from core): `ProductCreated`, `ProductUpdated` (both
  `ProductFacts`), `ProductDeleted`.
- Orders (`relais.events`, from core, each copied to its buyer's `user.<id>`): `OrderPaid` (its
  `OrderLine`s), `OrderPaymentFailed`, `OrderCancelled`. Payment events reach the buyer the same
  way.
- Money: `CURRENCIES` (ISO 4217 minor-unit exponents), `Amount`, `Currency`, `decimal_amount`.
- Statuses: `OrderStatus`, `PaymentStatus`, `RefundStatus`, `ProviderStatus`.
"""

from contracts._ai import (
    INLINE_MEDIA_MAX,
    MAX_AUDIO_SECONDS,
    MAX_MEDIA,
    MAX_TEXT,
    AudioAnalysis,
    AudioAnalysisRequest,
    ImageAnalysis,
    ImageAnalysisRequest,
    Media,
    Sentiment,
    TextAnalysis,
    TextAnalysisRequest,
)
from contracts._base import Contract
from contracts._catalog import (
    MAX_QUERY,
    MAX_RESULTS,
    ProductCreated,
    ProductDeleted,
    ProductFacts,
    ProductUpdated,
    Recommendation,
    Recommendations,
    RecommendationsRequest,
    SearchHit,
    SearchRequest,
    SearchResults,
)
from contracts._money import CURRENCIES, MAX_AMOUNT, Amount, Currency, decimal_amount, exponent
from contracts._orders import OrderCancelled, OrderLine, OrderPaid, OrderPaymentFailed
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
    "INLINE_MEDIA_MAX",
    "MAX_AMOUNT",
    "MAX_AUDIO_SECONDS",
    "MAX_MEDIA",
    "MAX_QUERY",
    "MAX_RESULTS",
    "MAX_TEXT",
    "ORDER_STATUSES",
    "PAYMENT_STATUSES",
    "REFUND_STATUSES",
    "SETTLEMENT_OUTCOMES",
    "TEST_TOKENS",
    "Amount",
    "AudioAnalysis",
    "AudioAnalysisRequest",
    "ChargePayment",
    "Contract",
    "Currency",
    "CurrencyTotals",
    "DailyReport",
    "DailyReportRequest",
    "ImageAnalysis",
    "ImageAnalysisRequest",
    "Media",
    "OrderCancelled",
    "OrderLine",
    "OrderPaid",
    "OrderPaymentFailed",
    "OrderStatus",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentStatus",
    "PaymentSucceeded",
    "ProductCreated",
    "ProductDeleted",
    "ProductFacts",
    "ProductUpdated",
    "ProviderEvent",
    "ProviderEventV1",
    "ProviderStatus",
    "Recommendation",
    "Recommendations",
    "RecommendationsRequest",
    "RefundFailed",
    "RefundPayment",
    "RefundStatus",
    "SearchHit",
    "SearchRequest",
    "SearchResults",
    "Sentiment",
    "TextAnalysis",
    "TextAnalysisRequest",
    "decimal_amount",
    "exponent",
    "settlement_outcome",
]
