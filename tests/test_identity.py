"""Identity: two-factor sign-in (TOTP), verified e-mail (the outbox and SMTP adapters), password
reset and change, sessions, and the audit log."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from email import message_from_bytes
from typing import Any

import asyncpg
import pyotp
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from chassis.data import DB_POOL
from chassis.http import TOKENS
from devstack import mail
from services.core.mail import purge_outbox
from tests import factories
from tests.factories import PASSWORD, Account

pytestmark = pytest.mark.usefixtures("redis_prefix")


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The TOTP code of `secret` `offset_steps` time steps from now (as an app computes it)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def enrol(client: TestClient[Any, Any], account: Account) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on for `account`: its secret and recovery codes."""
    response = await client.post("/api/auth/2fa/enrol", headers=account.auth)
    assert response.status == 200, await response.text()
    enrolment = await response.json()
    secret = enrolment["secret"]
    response = await client.post(
        "/api/auth/2fa/confirm", json={"code": code_at(secret)}, headers=account.auth
    )
    assert response.status == 200, await response.text()
    return secret, (await response.json())["recovery_codes"]


async def challenge(client: TestClient[Any, Any], account: Account) -> str:
    """Log in with the password: the two-factor challenge."""
    response = await client.post(
        "/api/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["two_factor_required"] is True
    assert "access_token" not in body
    challenge_token: str = body["challenge"]
    return challenge_token


async def second_step(client: TestClient[Any, Any], challenge_token: str, code: str) -> Any:
    """Answer a challenge with a code."""
    return await client.post(
        "/api/auth/2fa/verify", json={"challenge": challenge_token, "code": code}
    )


async def audit(
    client: TestClient[Any, Any], admin: Account, **filters: str
) -> list[dict[str, Any]]:
    """Every audit entry matching the filters, through the admin API (all pages)."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/admin/audit", params=params, headers=admin.auth)
        assert response.status == 200, await response.text()
        body = await response.json()
        entries += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return entries


async def test_enrolment_gives_a_uri_and_qr_code_and_a_first_code_turns_it_on(client):
    account = await factories.register(client)
    response = await client.post("/api/auth/2fa/enrol", headers=account.auth)
    enrolment = await response.json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={enrolment['secret']}" in enrolment["otpauth_uri"]
    assert enrolment["qr_code_svg"].startswith("data:image/svg+xml")
    assert enrolment["qr_code_png"].startswith("data:image/png;base64,")
    # Not on until a code confirms it: a login still gets tokens at once.
    assert (
        "access_token"
        in await (
            await client.post(
                "/api/auth/login", json={"email": account.email, "password": PASSWORD}
            )
        ).json()
    )
    wrong = await client.post(
        "/api/auth/2fa/confirm", json={"code": "000000"}, headers=account.auth
    )
    assert wrong.status == 401
    assert wrong.content_type == "application/problem+json"
    response = await client.post(
        "/api/auth/2fa/confirm",
        json={"code": code_at(enrolment["secret"])},
        headers=account.auth,
    )
    codes = (await response.json())["recovery_codes"]
    assert len(codes) == 10 == len(set(codes))
    me = await (await client.get("/api/users/me", headers=account.auth)).json()
    assert me["two_factor_enabled"] is True
    # Enrolling again is refused while it is on.
    again = await client.post("/api/auth/2fa/enrol", headers=account.auth)
    assert again.status == 409


async def test_a_login_with_two_factor_completes_with_a_code_and_a_replay_is_refused(client, db):
    account = await factories.register(client)
    secret, _ = await enrol(client, account)
    # The confirmation spent the current step's code: the same code is a replay.
    replayed = await second_step(client, await challenge(client, account), code_at(secret))
    assert replayed.status == 401
    assert "used already" in (await replayed.json())["detail"]
    token = await challenge(client, account)
    response = await second_step(client, token, code_at(secret, 1))
    assert response.status == 200, await response.text()
    body = await response.json()
    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status == 200
    # The code of that step is spent, and so is the challenge.
    again = await second_step(client, await challenge(client, account), code_at(secret, 1))
    assert again.status == 401
    reused = await second_step(client, token, code_at(secret, 1))
    assert reused.status == 401
    stored = await db.fetchval(
        "SELECT count(*) FROM recovery_codes WHERE user_id = $1::uuid AND used_at IS NULL",
        account.id,
    )
    assert stored == 10


async def test_a_recovery_code_signs_in_once(client, db):
    account = await factories.register(client)
    _, codes = await enrol(client, account)
    hashes = await db.fetch(
        "SELECT code_hash FROM recovery_codes WHERE user_id = $1::uuid", account.id
    )
    assert not {row["code_hash"] for row in hashes} & {c.replace("-", "") for c in codes}
    response = await second_step(client, await challenge(client, account), codes[3].upper())
    assert response.status == 200, await response.text()
    response = await second_step(client, await challenge(client, account), codes[3])
    assert response.status == 401
    response = await second_step(client, await challenge(client, account), codes[4])
    assert response.status == 200


async def test_code_attempts_are_throttled_per_account(make_client):
    client = await make_client(two_factor_attempt_limit="3/5minutes")
    account = await factories.register(client)
    secret, _ = await enrol(client, account)
    token = await challenge(client, account)
    statuses = [(await second_step(client, token, "123456")).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    # The limit is spent: even the right code waits now.
    response = await second_step(client, token, code_at(secret, 1))
    assert response.status == 429
    assert response.headers["Retry-After"]


async def test_turning_two_factor_off_needs_a_fresh_code(client):
    account = await factories.register(client)
    secret, _ = await enrol(client, account)
    replay = await client.post(
        "/api/auth/2fa/disable", json={"code": code_at(secret)}, headers=account.auth
    )
    assert replay.status == 401
    response = await client.post(
        "/api/auth/2fa/disable", json={"code": code_at(secret, 1)}, headers=account.auth
    )
    assert response.status == 204
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert "access_token" in await login.json()


async def test_admins_must_sign_in_with_two_factor_where_it_is_required(make_client, db):
    client = await make_client(require_admin_2fa=True)
    admin = await factories.admin(client, db)
    response = await client.post(
        "/api/products", json=factories.product_fields(), headers=admin.auth
    )
    assert response.status == 403
    assert "two-factor" in (await response.json())["detail"]
    secret, _ = await enrol(client, admin)
    response = await second_step(client, await challenge(client, admin), code_at(secret, 1))
    two_factor = Account(
        admin.id,
        admin.email,
        **{key: (await response.json())[key] for key in ("access_token", "refresh_token")},
    )
    response = await client.post(
        "/api/products", json=factories.product_fields(), headers=two_factor.auth
    )
    assert response.status == 201, await response.text()
    # A refreshed token keeps the login's second factor.
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": two_factor.refresh_token}
    )
    token = (await refreshed.json())["access_token"]
    response = await client.post(
        "/api/products",
        json=factories.product_fields(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 201


def test_admins_need_two_factor_by_default_in_production_only(settings):
    assert not settings.admins_need_two_factor
    production = settings.model_copy(update={"relais_env": "production"})
    assert production.admins_need_two_factor
    assert not production.model_copy(update={"require_admin_2fa": False}).admins_need_two_factor


async def test_an_unverified_account_can_order_but_not_pay_until_it_opens_its_link(
    client, admin_account, db
):
    customer = await factories.register(client, verified=False)
    me = await (await client.get("/api/users/me", headers=customer.auth)).json()
    assert me["email_verified"] is False
    product = await factories.create_product(client, admin_account)
    order = await factories.place_order(client, customer, product)
    status, body = await factories.pay(client, customer, order["id"], wait=None)
    assert status == 403, body
    assert "Verify your e-mail" in body["detail"]
    assert (
        await db.fetchval("SELECT count(*) FROM payments WHERE order_id = $1::uuid", order["id"])
        == 0
    )
    # The link itself, as mailed (a GET), verifies the address.
    token = await factories.mailed_token(db, customer.email, "Confirm your e-mail address")
    body_text = await db.fetchval(
        "SELECT body FROM mail_outbox WHERE recipient = $1 ORDER BY id DESC LIMIT 1",
        customer.email,
    )
    assert f"/api/auth/verify-email?token={token}" in body_text
    response = await client.get("/api/auth/verify-email", params={"token": token})
    assert response.status == 200, await response.text()
    assert (await response.json())["email_verified"] is True
    status, body = await factories.pay(client, customer, order["id"], wait=None)
    assert status == 202, body


async def test_a_verification_link_is_single_use_and_expires(client, db):
    account = await factories.register(client, verified=False)
    token = await factories.mailed_token(db, account.email, "Confirm your e-mail address")
    expired = client.server.app[TOKENS].sign_once(
        "email-verification", subject=account.id, ttl=-60, email=account.email
    )
    response = await client.post("/api/auth/verify-email", json={"token": expired})
    assert response.status == 400
    assert "expired" in (await response.json())["detail"]
    # Another kind of token does not pass for a verification link.
    response = await client.post("/api/auth/verify-email", json={"token": account.access_token})
    assert response.status == 400
    assert (await client.post("/api/auth/verify-email", json={"token": token})).status == 200
    second = await client.post("/api/auth/verify-email", json={"token": token})
    assert second.status == 409
    resend = await client.post("/api/auth/verify-email/resend", headers=account.auth)
    assert resend.status == 409


async def test_a_password_reset_is_single_use_expires_and_revokes_every_session(make_client, db):
    first, second = await make_client(), await make_client()
    account = await factories.register(first)
    other_login = await factories.login(second, account.email)
    unknown = await first.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    assert unknown.status == 202
    response = await first.post("/api/auth/password-reset", json={"email": account.email})
    assert response.status == 202
    token = await factories.mailed_token(db, account.email, "Reset your Relais password")
    expired = first.server.app[TOKENS].sign_once(
        "password-reset", subject=account.id, ttl=-60, ver=0
    )
    response = await first.post(
        "/api/auth/password-reset/confirm", json={"token": expired, "password": "x" * 12}
    )
    assert response.status == 400
    new_password = "a brand new password"
    response = await first.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": new_password}
    )
    assert response.status == 204, await response.text()
    again = await first.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": "another one!"}
    )
    assert again.status == 400
    for client, login in ((first, account), (second, other_login)):
        assert (await client.get("/api/users/me", headers=login.auth)).status == 401
        refreshed = await client.post(
            "/api/auth/refresh", json={"refresh_token": login.refresh_token}
        )
        assert refreshed.status == 401
    assert (await factories.login(first, account.email, new_password)).access_token
    live = await db.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL",
        account.id,
    )
    assert live == 1  # the login just made


async def test_changing_the_password_needs_the_current_one_and_ends_the_other_sessions(client):
    account = await factories.register(client)
    other = await factories.login(client, account.email)
    wrong = await client.post(
        "/api/users/me/password",
        json={"current_password": "not it at all", "new_password": "a brand new password"},
        headers=account.auth,
    )
    assert wrong.status == 403
    response = await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers=account.auth,
    )
    assert response.status == 200, await response.text()
    fresh = (await response.json())["access_token"]
    assert (await client.get("/api/users/me", headers=other.auth)).status == 401
    assert (await client.get("/api/users/me", headers=account.auth)).status == 401
    me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {fresh}"})
    assert me.status == 200


async def test_sessions_are_listed_and_a_revoked_one_is_refused_on_every_instance(make_client):
    first, second = await make_client(), await make_client()
    account = await factories.register(first)
    phone = await second.post(
        "/api/auth/login",
        json={"email": account.email, "password": PASSWORD},
        headers={"User-Agent": "RelaisPhone/1.0"},
    )
    phone_tokens = await phone.json()
    phone_auth = {"Authorization": f"Bearer {phone_tokens['access_token']}"}
    response = await first.get("/api/users/me/sessions", headers=account.auth)
    sessions = (await response.json())["items"]
    assert len(sessions) == 2
    mine = [s for s in sessions if s["current"]]
    theirs = [s for s in sessions if not s["current"]]
    assert len(mine) == len(theirs) == 1
    assert theirs[0]["user_agent"] == "RelaisPhone/1.0"
    assert theirs[0]["address"] == "127.0.0.1"
    assert theirs[0]["last_used_at"] >= theirs[0]["created_at"]
    # Both instances accept the phone's token, until its owner revokes it on one of them.
    for client in (first, second):
        assert (await client.get("/api/users/me", headers=phone_auth)).status == 200
    response = await first.delete(f"/api/users/me/sessions/{theirs[0]['id']}", headers=account.auth)
    assert response.status == 204
    for client in (first, second):
        assert (await client.get("/api/users/me", headers=phone_auth)).status == 401
    refreshed = await second.post(
        "/api/auth/refresh", json={"refresh_token": phone_tokens["refresh_token"]}
    )
    assert refreshed.status == 401
    assert (await first.get("/api/users/me", headers=account.auth)).status == 200
    remaining = await (await first.get("/api/users/me/sessions", headers=account.auth)).json()
    assert [s["id"] for s in remaining["items"]] == [mine[0]["id"]]
    # Another account's session, or one revoked already: no such session.
    stranger = await factories.register(first)
    for session_id, who in ((mine[0]["id"], stranger), (theirs[0]["id"], account)):
        response = await first.delete(f"/api/users/me/sessions/{session_id}", headers=who.auth)
        assert response.status == 404


async def test_each_audited_action_leaves_exactly_one_entry(client, admin_account, db, caplog):
    caplog.set_level(logging.INFO, logger="relais.audit")
    response = await client.post(
        "/api/auth/register",
        json={"email": (email := factories.unique_email()), "password": PASSWORD, "name": "A"},
        headers={"User-Agent": "audit-test"},
    )
    request_id = response.headers["X-Request-ID"]
    user_id = (await response.json())["user"]["id"]
    await factories.verify_email(client, email)
    bad = await client.post("/api/auth/login", json={"email": email, "password": "wrong!"})
    assert bad.status == 401
    account = await factories.login(client, email)
    secret, _ = await enrol(client, account)
    product = await factories.create_product(client, admin_account)
    await client.patch(
        f"/api/products/{product['id']}", json={"price_cents": 999}, headers=admin_account.auth
    )
    await client.delete(f"/api/products/{product['id']}", headers=admin_account.auth)
    await client.post("/api/auth/logout", headers=account.auth)

    entries = await audit(client, admin_account, actor=user_id)
    actions = sorted(entry["action"] for entry in entries)
    assert actions == sorted(
        [
            "account.registered",
            "account.email_verified",
            "auth.login.failed",
            "auth.login.succeeded",
            "2fa.enabled",
            "session.revoked",
        ]
    )
    registered = next(e for e in entries if e["action"] == "account.registered")
    assert registered["request_id"] == request_id
    assert registered["user_agent"] == "audit-test"
    assert registered["address"] == "127.0.0.1"
    assert registered["subject"] == email
    by_admin = await audit(client, admin_account, actor=admin_account.id)
    assert [e["action"] for e in by_admin if e["subject"] == product["id"]] == [
        "product.created",
        "product.updated",
        "product.deleted",
    ]
    # Filters by action and time, and the JSON log's `audit` key.
    since = registered["created_at"]
    failed = await audit(client, admin_account, action="auth.login.failed", since=since)
    assert [e["actor_id"] for e in failed if e["subject"] == email] == [user_id]
    logged = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("actor_id") == user_id]
    assert sorted(entry["action"] for entry in logged) == actions
    assert secret


async def test_the_audit_log_refuses_changes_even_to_its_owner(client, db):
    await factories.register(client)
    entry_id = await db.fetchval("SELECT id FROM audit_log LIMIT 1")
    for statement in (
        "UPDATE audit_log SET action = 'forged' WHERE id = $1",
        "DELETE FROM audit_log WHERE id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(statement, entry_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("TRUNCATE audit_log")
    assert await db.fetchval("SELECT action FROM audit_log WHERE id = $1", entry_id)


async def test_the_audit_log_is_for_admins_and_pages_by_cursor(client, admin_account):
    customer = await factories.register(client)
    assert (await client.get("/api/admin/audit", headers=customer.auth)).status == 403
    for _ in range(3):
        await factories.register(client)
    first = await (
        await client.get(
            "/api/admin/audit",
            params={"action": "account.registered", "limit": "2"},
            headers=admin_account.auth,
        )
    ).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = await (
        await client.get(
            "/api/admin/audit",
            params={"action": "account.registered", "limit": "2", "cursor": first["next_cursor"]},
            headers=admin_account.auth,
        )
    ).json()
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in rest["items"]}
    for since in ("yesterday", "0.5", "1733390000", "2026-12-05T09:30:00"):  # the last: no offset
        bad = await client.get(
            "/api/admin/audit", params={"since": since}, headers=admin_account.auth
        )
        assert bad.status == 422, since
        assert bad.content_type == "application/problem+json"


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.arrived.set()
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_smtp_adapter_mails_a_link_that_verifies_the_address(make_client):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        client = await make_client(mail_backend="smtp", smtp_port=port)
        account = await factories.register(client, verified=False)
        await asyncio.wait_for(inbox.arrived.wait(), 10)
    finally:
        controller.stop()
    [message] = inbox.messages
    assert message["To"] == account.email
    assert message["Subject"] == "Confirm your e-mail address"
    text = message.get_payload(decode=True).decode()
    token = mail.TOKEN.findall(text)[-1]
    response = await client.post("/api/auth/verify-email", json={"token": token})
    assert response.status == 200
    assert (await response.json())["email_verified"] is True
    # With the server gone, registration still stands and the failure is the resend's answer.
    response = await client.post("/api/auth/verify-email/resend", headers=account.auth)
    assert response.status == 409  # verified already
    other = await factories.register(client, verified=False)
    response = await client.post("/api/auth/verify-email/resend", headers=other.auth)
    assert response.status == 503


async def test_the_development_outbox_forgets_old_messages(client, db):
    account = await factories.register(client, verified=False)
    await db.execute(
        "UPDATE mail_outbox SET created_at = now() - interval '8 days' WHERE recipient = $1",
        account.email,
    )
    fresh = await factories.register(client, verified=False)
    assert await purge_outbox(client.server.app[DB_POOL], retention_days=7) >= 1
    left = await db.fetch(
        "SELECT recipient FROM mail_outbox WHERE recipient = ANY($1::text[])",
        [account.email, fresh.email],
    )
    assert [row["recipient"] for row in left] == [fresh.email]


async def test_credential_changes_lockouts_and_refunds_are_audited_once_each(
    make_client, worker, db
):
    client = await make_client(login_failure_limit="2/15minutes")
    admin = await factories.admin(client, db)
    account = await factories.register(client)
    # a guesser elsewhere locks the account out from its own address
    guesser = {"X-Real-IP": "198.51.100.7"}
    for _ in range(2):
        bad = await client.post(
            "/api/auth/login", json={"email": account.email, "password": "no!"}, headers=guesser
        )
        assert bad.status == 401
    refused = await client.post(
        "/api/auth/login", json={"email": account.email, "password": "x"}, headers=guesser
    )
    assert refused.status == 429  # refused before any check: neither a failure nor a lockout
    await client.post(
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": "second password!"},
        headers=account.auth,
    )
    await client.post("/api/auth/password-reset", json={"email": account.email})
    token = await factories.mailed_token(db, account.email, mail.RESET_SUBJECT)
    await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": "third password!"}
    )
    fresh = await factories.login(client, account.email, "third password!")
    secret, codes = await enrol(client, fresh)
    await client.post("/api/auth/2fa/disable", json={"code": "000000"}, headers=fresh.auth)
    await client.post("/api/auth/2fa/disable", json={"code": codes[0]}, headers=fresh.auth)
    product = await factories.create_product(client, admin)
    order = await factories.place_order(client, fresh, product)
    status, payment = await factories.pay(client, fresh, order["id"])
    assert status == 200, payment
    response = await client.post(
        f"/api/payments/{payment['id']}/refunds",
        json={"amount_cents": 100},
        headers={**admin.auth, "Idempotency-Key": "audit-refund"},
    )
    assert response.status == 202

    mine = await audit(client, admin, actor=account.id)
    counted = {
        action: [e["action"] for e in mine].count(action) for action in {e["action"] for e in mine}
    }
    assert counted == {
        "account.registered": 1,
        "account.email_verified": 1,
        "auth.login.failed": 2,
        "auth.login.locked": 1,
        "account.password_changed": 1,
        "account.password_reset": 1,
        "auth.login.succeeded": 1,
        "2fa.enabled": 1,
        "auth.2fa.failed": 1,
        "2fa.disabled": 1,
    }
    requested = await audit(client, admin, action="account.password_reset_requested")
    assert [e["subject"] for e in requested].count(account.email) == 1
    refunds = [
        e
        for e in await audit(client, admin, action="payment.refund_issued")
        if e["subject"] == payment["id"]
    ]
    assert len(refunds) == 1
    assert refunds[0]["actor_id"] == admin.id
    assert refunds[0]["details"]["amount_cents"] == 100
    assert secret


async def test_mailed_links_expire_on_the_second(make_client, db):
    client = await make_client(password_reset_ttl=1, email_verification_ttl=1)
    account = await factories.register(client, verified=False)
    await client.post("/api/auth/password-reset", json={"email": account.email})
    await asyncio.sleep(2.1)
    verification = await factories.mailed_token(db, account.email, mail.VERIFICATION_SUBJECT)
    response = await client.post("/api/auth/verify-email", json={"token": verification})
    assert response.status == 400
    reset = await factories.mailed_token(db, account.email, mail.RESET_SUBJECT)
    response = await client.post(
        "/api/auth/password-reset/confirm", json={"token": reset, "password": "never set, this"}
    )
    assert response.status == 400
    assert "expired" in (await response.json())["detail"]
    assert (await factories.login(client, account.email)).access_token  # the password stayed


async def test_a_reused_refresh_token_ends_its_session_and_is_audited(client, admin_account, db):
    account = await factories.register(client)
    first = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status == 200
    again = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert again.status == 401
    revoked = await audit(client, admin_account, actor=account.id, action="session.revoked")
    assert [e["details"]["reason"] for e in revoked] == ["refresh token reused"]
    live = await db.fetchval(
        "SELECT count(*) FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL",
        account.id,
    )
    assert live == 0
