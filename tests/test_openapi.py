"""The OpenAPI document is valid and describes exactly the routes the app serves."""

from __future__ import annotations

import uuid

from openapi_spec_validator import validate

from tests.factories import register

API_METHODS = {"GET", "POST", "PATCH", "DELETE", "PUT"}


async def test_document_is_valid_and_matches_router(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method in API_METHODS
        and route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and not route.resource.canonical.startswith(("/api/docs", "/api/openapi", "/api/problems"))
        and route.resource.canonical != "/api/"  # the index: links, not an operation
    }
    assert documented == served
    register = document["paths"]["/api/auth/register"]["post"]
    assert set(register["responses"]) >= {"201", "409", "422"}
    assert register["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RegisterIn"
    )
    assert (
        document["components"]["schemas"]["ProductOut"]["properties"]["price_cents"]["type"]
        == "integer"
    )


async def test_docs_page_and_assets(client):
    page = await client.get("/api/docs")
    assert page.status == 200
    html = await page.text()
    assert "swagger-ui-bundle.js" in html
    asset = await client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status == 200
    assert len(await asset.read()) > 100_000
    assert "/api/openapi.json" in await (await client.get("/api/docs/static/init.js")).text()


async def test_every_protected_operation_enforces_its_declared_role(client):
    document = await (await client.get("/api/openapi.json")).json()
    customer = await register(client)
    checked = 0
    for path, operations in document["paths"].items():
        url = path.replace("{id}", str(uuid.uuid4())).replace("{refund_id}", str(uuid.uuid4()))
        for method, spec in operations.items():
            if "security" not in spec:
                continue
            # An admin-only option of a user's operation (every user's orders).
            if any(param["name"] == "all" for param in spec.get("parameters", [])):
                url += "?all=true"
            anonymous = await client.request(method.upper(), url, json={})
            assert anonymous.status == 401, (method, path)
            # A 403 of the role (not one of the operation's own meaning, such as a wrong password).
            if spec["responses"].get("403", {}).get("description") == "Role not allowed":
                as_customer = await client.request(
                    method.upper(), url, json={}, headers=customer.auth
                )
                assert as_customer.status == 403, (method, path)
            checked += 1
    assert checked >= 10
