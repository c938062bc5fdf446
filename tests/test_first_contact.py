"""What an API user and an operator meet in their first hour (issue "First contact"): each item
of the issue against real PostgreSQL, Redis and RabbitMQ. The stack-level items (the alert
receiver, `make status`, `make up` twice, `make seed`, `make sandbox-settle`, runbooks served by
NGINX) are in `test_e2e_stack.py`."""

from __future__ import annotations

import re
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chassis.http import PROBLEM_TYPES, ApiRoutes
from chassis.messaging import DEAD_LETTER_REASONS
from chassis.telemetry import METRICS
from contracts import CURRENCIES, SETTLEMENT_OUTCOMES, TEST_TOKENS
from devstack.processes import log_files
from devstack.settings import StackSettings
from devstack.tail import tail_lines
from services.core.app import ROUTE_TABLES as CORE_ROUTES
from services.payments.app import ROUTE_TABLES as PAYMENTS_ROUTES
from services.payments.handlers import COMMAND_QUEUE
from services.payments.keys import PAYMENTS_SETTINGS
from services.payments.providers import SANDBOX_TOKENS
from services.payments.sandbox_control import settle
from tests.factories import create_product, pay, place_order, register
from tests.faults import eventually
from tests.payments_support import is_, ledger_sum, order_status, payment_status

ROOT = Path(__file__).resolve().parent.parent


# --- Finding a payment again -------------------------------------------------------------


async def test_an_order_lists_its_payments_and_each_can_be_found_again(
    client, worker, admin_account, db
):
    product = await create_product(client, admin_account, stock=5)
    customer, stranger = await register(client), await register(client)
    order = await place_order(client, customer, product)
    _, declined = await pay(client, customer, order["id"], "tok_chargeDeclined")
    _, paid = await pay(client, customer, order["id"], "tok_visa")
    assert (declined["status"], paid["status"]) == ("failed", "succeeded")

    body = await (await client.get(f"/api/orders/{order['id']}", headers=customer.auth)).json()
    assert body["payments"] == [
        {"id": declined["id"], "status": "failed"},
        {"id": paid["id"], "status": "succeeded"},
    ]
    listing = await (await client.get("/api/orders", headers=customer.auth)).json()
    [listed] = [item for item in listing["items"] if item["id"] == order["id"]]
    assert listed["payments"] == body["payments"]

    url = f"/api/orders/{order['id']}/payments"
    for who in (customer, admin_account):
        response = await client.get(url, headers=who.auth)
        assert response.status == 200
        items = (await response.json())["items"]
        assert [(p["id"], p["status"], p["failure_code"]) for p in items] == [
            (declined["id"], "failed", "card_declined"),
            (paid["id"], "succeeded", None),
        ]
    assert (await client.get(url, headers=stranger.auth)).status == 404
    unknown = f"/api/orders/{uuid.uuid4()}/payments"
    assert (await client.get(unknown, headers=customer.auth)).status == 404


async def test_a_refund_answers_with_its_location_and_can_be_read_there(
    client, worker, admin_account, db
):
    product = await create_product(client, admin_account, price_cents=8000)
    customer, stranger = await register(client), await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    headers = {**admin_account.auth, "Idempotency-Key": f"refund-{uuid.uuid4()}"}
    response = await client.post(
        f"/api/payments/{payment['id']}/refunds", json={"amount_cents": 3000}, headers=headers
    )
    assert response.status == 202
    refund = await response.json()
    location = response.headers["Location"]
    assert location == f"/api/payments/{payment['id']}/refunds/{refund['id']}"
    replay = await client.post(
        f"/api/payments/{payment['id']}/refunds", json={"amount_cents": 3000}, headers=headers
    )
    assert replay.headers["Location"] == location
    await eventually(lambda: is_(payment_status(db, payment["id"]), "partially_refunded"))
    for who in (admin_account, customer):  # its payer may follow it too
        seen = await client.get(location, headers=who.auth)
        assert seen.status == 200
        assert (await seen.json())["id"] == refund["id"]
    assert (await (await client.get(location, headers=customer.auth)).json())["status"] == (
        "succeeded"
    )
    assert (await client.get(location, headers=stranger.auth)).status == 404
    other = f"/api/payments/{payment['id']}/refunds/{uuid.uuid4()}"
    assert (await client.get(other, headers=admin_account.auth)).status == 404


async def test_admins_list_every_order_filtered_by_status(client, worker, admin_account, db):
    product = await create_product(client, admin_account, stock=10)
    first, second = await register(client), await register(client)
    paid_order = await place_order(client, first, product)
    await pay(client, first, paid_order["id"])
    waiting = await place_order(client, second, product)

    async def ids(who: Any, query: str) -> set[str]:
        seen, cursor = set(), None
        while True:
            url = f"/api/orders?{query}&limit=100" + (f"&cursor={cursor}" if cursor else "")
            response = await client.get(url, headers=who.auth)
            assert response.status == 200, await response.text()
            body = await response.json()
            seen |= {item["id"] for item in body["items"]}
            assert all(
                item["status"] == m.group(1)
                for item in body["items"]
                if (m := re.search(r"status=(\w+)", query))
            )
            if not (cursor := body["next_cursor"]):
                return seen

    everyone = await ids(admin_account, "all=true")
    assert {paid_order["id"], waiting["id"]} <= everyone
    paid = await ids(admin_account, "all=true&status=paid")
    assert paid_order["id"] in paid and waiting["id"] not in paid
    assert waiting["id"] in await ids(admin_account, "all=true&status=pending_payment")
    # A customer sees their own orders, by status too, and never everyone's.
    assert await ids(first, "status=paid") == {paid_order["id"]}
    assert await ids(second, "status=paid") == set()
    refused = await client.get("/api/orders?all=true", headers=first.auth)
    assert refused.status == 403
    assert (await client.get("/api/orders?status=lost", headers=first.auth)).status == 422


# --- Prefer, declines ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("wait = 5", "wait=5"),  # RFC 7240 allows whitespace around "="
        ('respond-async, WAIT="4"; ignored=param', "wait=4"),
        ("wait=600", "wait=30"),  # capped at PAYMENT_WAIT_MAX
    ],
)
async def test_prefer_wait_is_parsed_as_rfc_7240_says(
    client, worker, admin_account, prefer, applied
):
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    response = await client.post(
        f"/api/orders/{order['id']}/payments",
        json={"payment_method": "tok_visa"},
        headers={**customer.auth, "Idempotency-Key": f"k-{uuid.uuid4()}", "Prefer": prefer},
    )
    assert response.status == 200, await response.text()
    assert response.headers["Preference-Applied"] == applied
    assert (await response.json())["status"] == "succeeded"


async def test_a_declined_card_is_counted_as_a_decline_not_a_failure(client, worker, admin_account):
    registry = client.app[METRICS].registry

    def count(outcome: str) -> float:
        labels = {"service": "core", "outcome": outcome, "currency": "EUR"}
        return registry.get_sample_value("relais_payments_settled_total", labels) or 0.0

    before = {outcome: count(outcome) for outcome in SETTLEMENT_OUTCOMES}
    product = await create_product(client, admin_account, stock=5)
    for token in ("tok_chargeDeclined", "tok_insufficientFunds"):
        customer = await register(client)
        order = await place_order(client, customer, product)
        _, payment = await pay(client, customer, order["id"], token)
        assert payment["status"] == "failed"
    # The consumer counts a settlement after its transaction commits, and the waiting request
    # may answer first: the count follows within moments.
    await eventually(lambda: count("declined") == before["declined"] + 2, within=5)
    assert count("failed") == before["failed"]


# --- The sandbox's way out -----------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "order_after"), [("succeeded", "paid"), ("failed", "")])
async def test_a_stuck_sandbox_payment_is_settled_by_the_sandboxs_signed_webhook(
    webhooks, client, make_worker, admin_account, db, outcome, order_after
):
    worker = await make_worker(provider_timeout=0.2)
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"], "tok_timeout", wait=1)
    assert payment["status"] == "processing"
    url = str(webhooks.clients[0].make_url("/api/payments/webhooks/sandbox"))
    answer = await settle(worker[PAYMENTS_SETTINGS], uuid.UUID(payment["id"]), outcome, url)
    assert '"duplicate":false' in answer.replace(" ", "")
    await eventually(lambda: is_(payment_status(db, payment["id"]), outcome))
    expected = order_after or "payment_failed"
    await eventually(lambda: is_(order_status(db, order["id"]), expected))
    assert await ledger_sum(db) == 0
    if outcome == "failed":  # the way out: paid again, at once
        _, again = await pay(client, customer, order["id"], "tok_visa")
        assert again["status"] == "succeeded"
    with pytest.raises(SystemExit, match="nothing to settle"):
        await settle(worker[PAYMENTS_SETTINGS], uuid.UUID(payment["id"]), outcome, url)


# --- The document ------------------------------------------------------------------------


def operations(tables: tuple[ApiRoutes, ...]) -> list[Any]:
    return [op for table in tables for op in table.operations]


async def test_idempotency_key_is_documented_required_exactly_where_the_api_requires_it(
    client, worker, admin_account
):
    document = await (await client.get("/api/openapi.json")).json()
    product = await create_product(client, admin_account)
    customer = await register(client)
    order = await place_order(client, customer, product)
    _, payment = await pay(client, customer, order["id"])
    ids = {"id": order["id"]}
    checked = 0
    for path, ops in document["paths"].items():
        for method, spec in ops.items():
            [key] = [p for p in spec.get("parameters", []) if p["name"] == "Idempotency-Key"] or [
                None
            ]
            if key is None:
                continue
            assert key["example"] and re.fullmatch(key["schema"]["pattern"], key["example"])
            url = path.replace("{id}", payment["id"] if "refunds" in path else ids["id"])
            who = admin_account if "refunds" in path else customer
            body = spec["requestBody"]["content"]["application/json"]["example"]
            if path == "/api/orders":
                body = {"items": [{"product_id": product["id"], "quantity": 1}]}
            response = await client.request(method.upper(), url, json=body, headers=who.auth)
            missing = response.status == 400 and "Idempotency-Key" in await response.text()
            assert missing == key["required"], (method, path, response.status)
            checked += 1
    assert checked == 3


def test_every_operation_has_request_and_response_examples_that_validate():
    documented = 0
    for op in operations(CORE_ROUTES + PAYMENTS_ROUTES):
        models: list[type[BaseModel]] = [op.body] if op.body is not None else []
        models += [
            model
            for status, model in op.responses.items()
            if status < 300 and isinstance(model, type)
        ]
        for model in models:
            examples = model.model_json_schema().get("examples")
            assert examples, f"{op.method} {op.path}: {model.__name__} has no example"
            for example in examples:
                model.model_validate(example)  # an example the API would accept or send
            documented += 1
    assert documented > 25


def test_payment_method_lists_the_sandboxs_test_tokens():
    from services.core.checkout.schemas import PaymentIn

    schema = PaymentIn.model_json_schema()["properties"]["payment_method"]
    assert set(TEST_TOKENS) == set(SANDBOX_TOKENS)
    assert schema["examples"] == list(TEST_TOKENS)
    for token in TEST_TOKENS:
        assert token in schema["description"]


# --- The index, the docs and the problem pages ---------------------------------------------


async def test_the_api_index_links_to_what_resolves(client):
    response = await client.get("/api/")
    assert response.status == 200
    links = (await response.json())["links"]
    assert set(links) >= {"docs", "openapi", "health", "problems"}
    for name, url in links.items():
        assert url.startswith("http://127.0.0.1:8080/"), url  # PUBLIC_URL
        if name != "health":  # /healthz is NGINX's own
            path = url.removeprefix("http://127.0.0.1:8080")
            assert (await client.get(path)).status == 200, url
    for path in ("/api/docs", "/api/docs/"):
        page = await client.get(path)
        assert page.status == 200 and "swagger-ui" in await page.text()


async def test_every_problem_type_resolves_to_its_page(client):
    # a few problems as clients meet them, each type followed to its page
    answers = [
        await client.get("/api/nowhere"),
        await client.post("/api/auth/login", data=b"{", headers={"Content-Type": "text/plain"}),
        await client.post("/api/auth/register", json={"email": "x"}),
        await client.get("/api/users/me"),
        await client.request("PUT", "/api/products"),
    ]
    for answer in answers:
        problem = await answer.json()
        path = problem["type"].removeprefix("http://127.0.0.1:8080")
        page = await client.get(path)
        assert page.status == 200 and page.content_type == "text/html"
        assert problem["title"] in await page.text()
        assert problem["title"] == PROBLEM_TYPES[path.rsplit("/", 1)[1]].title
    for slug, known in PROBLEM_TYPES.items():
        page = await client.get(f"/api/problems/{slug}")
        assert page.status == 200, slug
        assert known.title[1:] == known.title[1:].lower() or known.title.startswith("The ")
    assert (await client.get("/api/problems/")).status == 200
    assert (await client.get("/api/problems/no-such-thing")).status == 404


def test_nginx_answers_with_the_same_types_and_titles():
    template = (ROOT / "infra" / "nginx" / "relais.conf.template").read_text()
    placeholder = r"\{\{ nginx_problem_base \}\}"
    found = re.findall(rf'"type":"{placeholder}([a-z-]+)","title":"([^"]+)"', template)
    assert len(found) >= 4
    for slug, title in found:
        assert PROBLEM_TYPES[slug].title == title


async def test_a_bad_cursor_is_named_in_the_clients_words(client, admin_account):
    for path in ("/api/products", "/api/orders", "/api/users"):
        response = await client.get(f"{path}?cursor=not-a-cursor", headers=admin_account.auth)
        assert response.status == 422
        body = await response.json()
        assert body["errors"] == [{"field": "cursor", "message": "The cursor is not valid"}]
        assert "pattern" not in await response.text()


# --- Counters an alert reads exist from start-up -------------------------------------------


async def test_every_counter_an_alert_reads_exists_at_zero_from_start_up(client, worker):
    core = client.app[METRICS].registry
    payments = worker[METRICS].registry
    for outcome in SETTLEMENT_OUTCOMES:
        for currency in CURRENCIES:
            labels = {"service": "core", "outcome": outcome, "currency": currency}
            assert core.get_sample_value("relais_payments_settled_total", labels) is not None
        labels = {"service": "core", "outcome": outcome}
        assert core.get_sample_value("relais_payment_settlement_seconds_count", labels) == 0
    # every route of the API, for each status class, before its first request
    route = {"service": "core", "method": "POST", "route": "/api/orders/{id}/cancel"}
    for status in ("2xx", "4xx", "5xx"):
        labels = {**route, "status": status, "traffic": "real"}
        value = core.get_sample_value("relais_http_requests_total", labels)
        assert value == 0
    # each reason a consumer may dead-letter for, on the queue it consumes
    for reason in DEAD_LETTER_REASONS:
        labels = {"service": "payments", "queue": COMMAND_QUEUE, "reason": reason}
        assert payments.get_sample_value("relais_messages_dead_lettered_total", labels) == 0


# --- The operator's commands ---------------------------------------------------------------


def test_logs_read_the_last_lines_from_the_end_of_a_large_file(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    big = log / "nginx-access.log"
    line = '{"status":200,"path":"/api/products"}' + " " * 60
    with big.open("w") as file:
        for number in range(600_000):  # about 60 MB
            file.write(f"{number} {line}\n")
    (log / "core-1.log").write_text("one\ntwo\nthree\n")
    (log / "core-2.log").write_text("alpha\n")
    (log / "payments-1.log").write_text("x\n")
    (log / "nginx-error.log").write_text("")
    (log / "nginx-exporter.log").write_text("listening\n")
    tracemalloc.start()
    last = tail_lines(big, 5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [entry.split()[0] for entry in last] == [
        "599995",
        "599996",
        "599997",
        "599998",
        "599999",
    ]
    assert peak < 2 * 1024 * 1024, f"{peak} bytes to read 5 lines"
    assert tail_lines(log / "core-1.log", 2) == ["two", "three"]
    assert tail_lines(log / "core-1.log", 50) == ["one", "two", "three"]
    config = StackSettings(state_dir=tmp_path)
    assert [p.name for p in log_files(config, "core")] == ["core-1.log", "core-2.log"]
    assert [p.name for p in log_files(config, "core-2")] == ["core-2.log"]
    assert [p.name for p in log_files(config, "nginx")] == ["nginx-access.log", "nginx-error.log"]
    assert [p.name for p in log_files(config, "nginx-exporter")] == ["nginx-exporter.log"]
    assert log_files(config, "core-") == [] and log_files(config, "cor") == []
    assert len(log_files(config)) == 6
