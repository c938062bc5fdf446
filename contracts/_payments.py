"""The payments vocabulary on the wire: commands to the payments service, its events, its RPC."""

from __future__ import annotations

from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from contracts._base import Contract
from contracts._money import Amount, Currency

# Commands to the payments worker (exchange `relais.commands`, routing key = type).


class ChargePayment(Contract):
    """Charge an order's amount with a payment method; our payment id is the provider's key."""

    type: Literal["payment.charge"] = "payment.charge"
    version: Literal[1] = 1
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount_cents: Amount
    currency: Currency
    payment_method: str


class RefundPayment(Contract):
    """Refund part or all of a captured payment."""

    type: Literal["payment.refund"] = "payment.refund"
    version: Literal[1] = 1
    refund_id: UUID
    payment_id: UUID
    amount_cents: Amount


class _ProviderEventBody(BaseModel):
    """What every version of a forwarded provider webhook says."""

    provider: str
    event_id: str
    event_type: str
    payment_id: UUID | None
    provider_payment_id: str | None
    failure_code: str | None = None


class ProviderEventV1(_ProviderEventBody, Contract):
    """A verified provider webhook as core forwarded it before v2 (decoded for messages still
    queued; the worker reads it as a v2 event that names no amount, so it settles nothing)."""

    type: Literal["payment.provider_event"] = "payment.provider_event"
    version: Literal[1] = 1


class ProviderEvent(_ProviderEventBody, Contract):
    """A verified provider webhook, forwarded by core to the worker that owns payments, with
    what its object says (the worker checks it against the payment before believing it)."""

    type: Literal["payment.provider_event"] = "payment.provider_event"
    version: Literal[2] = 2
    refund_id: UUID | None = None
    provider_refund_id: str | None = None
    amount_cents: int | None = None
    currency: str | None = None

    @classmethod
    def from_v1(cls, event: ProviderEventV1) -> ProviderEvent:
        """A v1 event as v2: it names no amount, currency or refund."""
        return cls(**event.model_dump(exclude={"type", "version"}))


# Events of the payments worker (exchange `relais.events`, routing key = type).


class PaymentSucceeded(Contract):
    """Money moved: the order is paid."""

    type: Literal["payment.succeeded"] = "payment.succeeded"
    version: Literal[1] = 1
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount_cents: int
    currency: str


# Stripe's test tokens the sandbox provider takes, and what it does with each.
TEST_TOKENS = {
    "tok_visa": "succeeds",
    "tok_chargeDeclined": "is declined (card_declined)",
    "tok_insufficientFunds": "is declined (insufficient_funds)",
    "tok_timeout": "is charged, but the answer never comes: the payment waits for the "
    "reconciler or `make sandbox-settle`",
    "tok_threeDSecure2Required": "waits for a buyer who never acts (3-D Secure)",
}
# Failure codes that are the customer's card, not the platform: the issuer's decline codes
# (Stripe's documented decline codes; the sandbox's test tokens give the first three). A failed
# payment with any other code (a provider error, a timeout, a cancelled intent) is the platform's.
DECLINE_CODES = frozenset(
    {
        "card_declined",
        "insufficient_funds",
        "invalid_payment_method",
        "authentication_required",
        "card_not_supported",
        "card_velocity_exceeded",
        "currency_not_supported",
        "do_not_honor",
        "do_not_try_again",
        "expired_card",
        "fraudulent",
        "generic_decline",
        "incorrect_cvc",
        "incorrect_number",
        "incorrect_zip",
        "invalid_account",
        "invalid_amount",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "invalid_number",
        "lost_card",
        "pickup_card",
        "restricted_card",
        "stolen_card",
        "transaction_not_allowed",
        "withdrawal_count_limit_exceeded",
    }
)
# How a payment settled, as the checkout SLO sees it.
SETTLEMENT_OUTCOMES = ("succeeded", "declined", "failed")


def settlement_outcome(status: str, failure_code: str | None) -> str:
    """`succeeded`, `declined` (the customer's card said no) or `failed` (the platform failed:
    provider errors, timeouts)."""
    if status == "succeeded":
        return "succeeded"
    return "declined" if failure_code in DECLINE_CODES else "failed"


class PaymentFailed(Contract):
    """The provider refused the charge; no money moved."""

    type: Literal["payment.failed"] = "payment.failed"
    version: Literal[1] = 1
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    failure_code: str


class PaymentRefunded(Contract):
    """A refund went through; `refunded_cents` is the payment's total refunded so far."""

    type: Literal["payment.refunded"] = "payment.refunded"
    version: Literal[1] = 1
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    refund_id: UUID
    amount_cents: int
    refunded_cents: int
    fully_refunded: bool


class RefundFailed(Contract):
    """The provider refused a refund; its amount is refundable again."""

    type: Literal["payment.refund_failed"] = "payment.refund_failed"
    version: Literal[1] = 1
    payment_id: UUID
    refund_id: UUID
    failure_code: str


# RPCs answered by the payments worker (exchange `relais.rpc`, routing key = method).


class DailyReportRequest(Contract):
    """Ask for one UTC day's ledger totals."""

    type: Literal["payments.report.daily"] = "payments.report.daily"
    version: Literal[1] = 1
    day: date


class CurrencyTotals(BaseModel):
    currency: str
    captured_cents: int
    refunded_cents: int
    net_cents: int
    count: int


class DailyReport(Contract):
    """One UTC day's ledger totals, per currency."""

    type: Literal["payments.report.daily.reply"] = "payments.report.daily.reply"
    version: Literal[1] = 1
    day: date
    currencies: list[CurrencyTotals]
