"""Bodies of webhook intake."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class WebhookAck(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"received": True, "duplicate": False}]}
    )

    received: bool
    duplicate: bool


class ProviderEventData(BaseModel):
    object: dict[str, Any]


class ProviderEventIn(BaseModel):
    """A provider's event, in Stripe's format: `data.object` is a PaymentIntent (its
    `metadata.payment_id` names our payment), a Charge or a Refund. Signed in the
    `Stripe-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed
    with the webhook secret>`; refused if the time is more than the tolerance away."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "evt_sandbox_3f2a9c4d5e6b7a8c",
                    "object": "event",
                    "type": "payment_intent.succeeded",
                    "created": 1796292900,
                    "data": {
                        "object": {
                            "id": "pi_sandbox_7e6d5c4b3a2f4e1d9c0ba9f8e7d6c5b4",
                            "object": "payment_intent",
                            "amount": 9000,
                            "currency": "eur",
                            "status": "succeeded",
                            "metadata": {"payment_id": "7e6d5c4b-3a2f-4e1d-9c0b-a9f8e7d6c5b4"},
                        }
                    },
                }
            ]
        }
    )

    id: str
    object: str
    type: str
    created: int
    data: ProviderEventData
