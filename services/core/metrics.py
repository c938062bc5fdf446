"""Core's business metrics, in the process's registry beside the chassis' RED metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from chassis.telemetry import Metrics, current_ids, exemplar
from contracts import CURRENCIES, SETTLEMENT_OUTCOMES

# Settlement is seconds for a card, minutes when a webhook resolves a timeout.
# What an order may be when a payment of it succeeds too late.
NOT_PAYABLE = ("cancelled", "paid", "refunded")
SETTLEMENT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0)


class CheckoutMetrics:
    """Orders placed, payments settled by outcome and amount, and how long settling took."""

    def __init__(self, metrics: Metrics) -> None:
        self.service = metrics.service
        self.orders = Counter(
            "relais_orders_created_total",
            "Orders placed (replays of an Idempotency-Key not counted).",
            ["service", "currency"],
            registry=metrics.registry,
        )
        self.payments = Counter(
            "relais_payments_settled_total",
            "Payments settled, by outcome: succeeded, declined (the customer's card) or failed "
            "(the platform: provider errors, timeouts).",
            ["service", "outcome", "currency"],
            registry=metrics.registry,
        )
        self.amount = Counter(
            "relais_payments_settled_cents_total",
            "Amounts of settled payments in minor units, by outcome.",
            ["service", "outcome", "currency"],
            registry=metrics.registry,
        )
        self.settlement = Histogram(
            "relais_payment_settlement_seconds",
            "Time from a payment's creation to its success or failure.",
            ["service", "outcome"],
            buckets=SETTLEMENT_BUCKETS,
            registry=metrics.registry,
        )

        self.auto_refunds = Counter(
            "relais_payments_auto_refunded_total",
            "Payments that succeeded for an order no longer payable, refunded automatically, "
            "by what the order was.",
            ["service", "order_status"],
            registry=metrics.registry,
        )
        # Every series an alert or SLO reads exists from start-up at 0: a counter born at its
        # first increment hides that increment from `increase()`, so the first event would
        # never raise the alert.
        for order_status in NOT_PAYABLE:
            self.auto_refunds.labels(self.service, order_status)
        for outcome in SETTLEMENT_OUTCOMES:
            self.settlement.labels(self.service, outcome)
            for currency in CURRENCIES:
                self.payments.labels(self.service, outcome, currency)
                self.amount.labels(self.service, outcome, currency)

    def order_created(self, currency: str) -> None:
        """Count a new order."""
        self.orders.labels(self.service, currency).inc()

    def refunded_automatically(self, order_status: str) -> None:
        """Count a payment refunded because its order was no longer payable."""
        self.auto_refunds.labels(self.service, order_status).inc()

    def payment_settled(
        self, outcome: str, *, amount_cents: int, currency: str, created_at: datetime
    ) -> None:
        """Count a payment that just settled (`outcome`: succeeded, declined or failed), its
        amount and its settlement time."""
        self.payments.labels(self.service, outcome, currency).inc()
        self.amount.labels(self.service, outcome, currency).inc(amount_cents)
        seconds = (datetime.now(UTC) - created_at).total_seconds()
        self.settlement.labels(self.service, outcome).observe(
            max(seconds, 0.0), exemplar(current_ids())
        )
