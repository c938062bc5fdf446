"""Input that once made the API answer 500 without logging in: each now gets a 400 or 422
problem, and changes nothing."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest

from tests.factories import register

PROBLEM = "application/problem+json"


async def _problem(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict = await response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    "header",
    [
        "t=\u00b2,v1=" + "0" * 64,  # a superscript two: str.isdigit() says yes, int() says no
        "t={now},v1=\u00e9" + "0" * 63,  # not ASCII: compare_digest() refuses it
        "t={now},v1=" + "\uff10" * 64,  # fullwidth digits
        "t=,v1=",
    ],
)
async def test_a_malformed_webhook_signature_is_a_400(worker, webhooks, db, header):
    before = await db.fetchval("SELECT count(*) FROM payments.webhook_events")
    response = await webhooks.post(
        "/api/payments/webhooks/sandbox",
        data=b'{"id": "evt_1"}',
        headers={"Stripe-Signature": header.replace("{now}", str(int(time.time())))},
    )
    await _problem(response, 400)
    assert await db.fetchval("SELECT count(*) FROM payments.webhook_events") == before


async def test_nul_in_a_search_is_a_422(client):
    response = await client.get("/api/products", params={"q": "cup\x00"})
    body = await _problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["q"]


async def test_nul_in_a_login_email_is_a_422(client, db):
    before = await db.fetchval("SELECT count(*) FROM users")
    response = await client.post(
        "/api/auth/login", json={"email": "\u0000\u00b1\u00b9\t 0", "password": "x"}
    )
    body = await _problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["email"]
    response = await client.post(
        "/api/auth/register",
        json={"email": "a@example.com", "password": "long enough", "name": "N\u0000"},
    )
    await _problem(response, 422)
    assert await db.fetchval("SELECT count(*) FROM users") == before


def _old_cursor(created_at: str, row_id: str) -> str:
    """A cursor in the shape this API used to issue (base64 of a JSON pair)."""
    raw = orjson.dumps([created_at, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _old_cursor("0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"),
        "1.zz",
        "99999999999999999999.00000000000000000000000000000000",
        "",
    ],
)
async def test_a_cursor_the_api_never_issued_is_a_422(client, cursor):
    response = await client.get("/api/products", params={"cursor": cursor})
    body = await _problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    "cursor",
    ["0.00000000000000000000000000000000", "99999999999999999.ffffffffffffffffffffffffffffffff"],
)
async def test_every_cursor_the_document_allows_is_accepted(client, cursor):
    response = await client.get("/api/products", params={"cursor": cursor})
    assert response.status == 200, await response.text()


async def test_an_optional_body_is_documented_as_optional(client):
    document = await (await client.get("/api/openapi.json")).json()
    logout = document["paths"]["/api/auth/logout"]["post"]["requestBody"]
    refund = document["paths"]["/api/payments/{id}/refunds"]["post"]["requestBody"]
    assert logout["required"] is False and refund["required"] is False
    account = await register(client)
    assert (await client.post("/api/auth/logout", headers=account.auth)).status == 204


async def test_an_amount_beyond_any_price_is_a_422(client, db):
    from tests.factories import admin

    boss = await admin(client, db)
    response = await client.post(
        f"/api/payments/{uuid.uuid4()}/refunds",
        json={"amount_cents": 660385952357081259674976649216},  # found by Schemathesis
        headers={**boss.auth, "Idempotency-Key": f"refund-{uuid.uuid4()}"},
    )
    body = await _problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["amount_cents"]
