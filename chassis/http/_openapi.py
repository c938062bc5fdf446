"""The OpenAPI 3.1 document of a service's route tables, and the page that shows it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from chassis.http._payloads import NUL_FREE, without_null
from chassis.http._problems import PROBLEM_TYPES, problem_title
from chassis.http._routes import ApiRoutes, Response, Upload
from chassis.settings import DEFAULT_PUBLIC_URL, SETTINGS

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    304: "Not modified",
    400: "Malformed request",
    401: "Missing, invalid or revoked token",
    403: "Role not allowed",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid fields",
    429: "Rate limited",
    503: "Unavailable for now",
}


def openapi_document(*, title: str, version: str, tables: Iterable[ApiRoutes]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation in `tables`."""
    schemas: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}

    def ref(model: type[BaseModel], *, request: bool = False) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        if request:
            schema = _without_nul(schema)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for table in tables:
        for op in table.operations:
            spec: dict[str, Any] = {
                "summary": op.summary,
                "tags": [op.tag],
                "operationId": op.handler.__name__,
                "responses": {},
            }
            params = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
                for name in re.findall(r"{(\w+)}", op.path)
            ]
            if op.query is not None:
                query_schema = op.query.model_json_schema()
                required = set(query_schema.get("required", []))
                params += [
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": _without_nul(without_null(prop)),
                    }
                    for name, prop in query_schema["properties"].items()
                ]
            params += [
                {
                    "name": name,
                    "in": "header",
                    "required": header.required,
                    "description": header.description,
                    "schema": {"type": "string"}
                    | ({"pattern": header.pattern} if header.pattern else {}),
                }
                | ({"example": header.example} if header.example else {})
                for name, header in op.headers.items()
            ]
            if params:
                spec["parameters"] = params
            if op.body is not None:
                spec["requestBody"] = {
                    "required": op.body_required,
                    "content": {
                        "application/json": {"schema": ref(op.body, request=True)}
                        | _example(op.body)
                    },
                }
            if op.upload is not None:
                spec["requestBody"] = {"required": True, "content": _multipart(op.upload)}
            if op.auth != "public":
                spec["security"] = [{"bearer": []}]
            for status, response in sorted(op.responses.items()):
                spec["responses"][str(status)] = _response(status, response, ref)
                if op.links and 200 <= status < 300 and response is not None:
                    spec["responses"][str(status)]["links"] = {
                        target: {"operationId": target, "parameters": {"id": "$response.body#/id"}}
                        for target in op.links
                    }
            paths.setdefault(op.path, {})[op.method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _multipart(upload: Upload) -> dict[str, Any]:
    """The `multipart/form-data` body of an operation that takes a file."""
    schema = {
        "type": "object",
        "required": [upload.field],
        "additionalProperties": False,
        "properties": {
            upload.field: {
                "type": "string",
                "format": "binary",
                "description": f"{upload.description} (at most {upload.max_bytes // 2**20} MiB)",
            }
        },
    }
    return {"multipart/form-data": {"schema": schema}}


def _without_nul(schema: Any) -> Any:
    """`schema` with every free-form string refusing NUL, as `chassis.payloads.validated` does
    (PostgreSQL cannot store it), where no pattern or format says more."""
    if isinstance(schema, list):
        return [_without_nul(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copy = {key: _without_nul(value) for key, value in schema.items()}
    if copy.get("type") == "string" and not {"pattern", "format", "enum"} & set(copy):
        copy["pattern"] = NUL_FREE
    return copy


def _response(status: int, response: Response, ref: Callable[[type[BaseModel]], Any]) -> Any:
    description = _STATUS_TEXT.get(status, "See the problem details")
    if status >= 400:
        # an error of its own meaning on this operation (a 403 that is not about the role)
        description = response if isinstance(response, str) else description
        problem = {"$ref": "#/components/schemas/Problem"}
        return {
            "description": description,
            "content": {
                "application/problem+json": {"schema": problem, "example": _problem_example(status)}
            },
        }
    if isinstance(response, str):
        return {"description": response}
    if response is None:
        return {"description": description}
    media = {"schema": ref(response)} | _example(response)
    return {"description": description, "content": {"application/json": media}}


def _problem_example(status: int) -> dict[str, Any]:
    """A problem of `status` as the API answers it (its usual type for that status)."""
    slug = next((slug for slug, known in PROBLEM_TYPES.items() if known.status == status), None)
    slug = slug or "bad-request"
    return {
        "type": f"{DEFAULT_PUBLIC_URL}/api/problems/{slug}",
        "title": problem_title(slug, status),
        "status": status,
        "detail": PROBLEM_TYPES[slug].happened.split(":")[0].rstrip("."),
        "instance": "/api/orders",
        "request_id": "5b0f6a2c9d4e4c1f8a7b3e2d1c0f9a8b",
    }


def _example(model: type[BaseModel]) -> dict[str, Any]:
    """The media type's `example`: the first of the model's own `examples`, if it has any."""
    examples = model.model_json_schema().get("examples")
    return {"example": examples[0]} if examples else {}


_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/docs/static/init.js"></script></body></html>
"""
_DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/api/openapi.json', dom_id: '#swagger-ui'});\n"
# The page loads its own assets and nothing else: no other origin, no inline script.
DOCS_POLICY = "default-src 'self'; frame-ancestors 'none'"
# The only files of the Swagger UI distribution the page uses.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
}


def setup_docs(app: web.Application, document: dict[str, Any], assets: Path) -> None:
    """Serve the document at `/api/openapi.json`, Swagger UI at `/api/docs` (and `/api/docs/`):
    the page, its initializer and the two distribution files it loads, under a
    same-origin-only policy; and the API's index at `/api/` (links to the docs, the document,
    health and the problem types)."""
    body = orjson.dumps(document)
    headers = {"Content-Security-Policy": DOCS_POLICY}
    page = _DOCS_PAGE.format(title=document["info"]["title"])

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def index(request: web.Request) -> web.Response:
        base = request.app[SETTINGS].public_url.rstrip("/")
        links = {
            "docs": f"{base}/api/docs",
            "openapi": f"{base}/api/openapi.json",
            "health": f"{base}/healthz",
            "problems": f"{base}/api/problems/",
        }
        return web.Response(
            body=orjson.dumps({"title": document["info"]["title"], "links": links}),
            content_type="application/json",
        )

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=headers)

    async def init_js(request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT, content_type="application/javascript", headers=headers)

    def asset(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        data = (assets / name).read_bytes()

        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=data, content_type=content_type, headers=headers)

        return serve

    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/api/", index)
    app.router.add_get("/api/docs", docs)
    app.router.add_get("/api/docs/", docs)
    app.router.add_get("/api/docs/static/init.js", init_js)
    for name, content_type in DOCS_ASSETS.items():
        app.router.add_get(f"/api/docs/static/{name}", asset(name, content_type))
