"""HTTP views of the catalog domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL, read_tolerating_lag
from chassis.http import ApiRoutes, Header, json_body, json_response, path_uuid, query_params
from services.core.audit.service import Actor
from services.core.catalog import service
from services.core.catalog.schemas import (
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
)
from services.core.keys import PRODUCT_CACHE

routes = ApiRoutes("catalog")


@routes.route(
    "POST",
    "/api/products",
    summary="Add a product (admin)",
    auth="admin",
    body=ProductIn,
    responses={201: ProductOut, 409: None},
    links=("get_product", "update_product", "delete_product"),
)
async def create_product(request: web.Request) -> web.Response:
    data = await json_body(request, ProductIn)
    product = await service.create_product(
        pool=request.app[DB_POOL],
        cache=request.app[PRODUCT_CACHE],
        fields=data.model_dump(),
        actor=Actor.of(request),
    )
    return json_response(
        product, status=201, headers={"Location": f"/api/products/{product['id']}"}
    )


@routes.route(
    "GET",
    "/api/products",
    summary="Search the catalog (keyset-paginated)",
    query=ProductQuery,
    responses={200: ProductPage},
)
async def list_products(request: web.Request) -> web.Response:
    query = query_params(request, ProductQuery)
    return json_response(
        await read_tolerating_lag(
            request.app, lambda pool: service.list_products(pool=pool, **query.model_dump())
        )
    )


@routes.route(
    "GET",
    "/api/products/{id}",
    summary="One product, with an ETag",
    headers={"If-None-Match": Header("An ETag from an earlier response; 304 when unchanged")},
    responses={200: ProductOut, 304: None, 404: None},
)
async def get_product(request: web.Request) -> web.Response:
    cached = await service.cached_product(
        pool=request.app[DB_POOL], cache=request.app[PRODUCT_CACHE], product_id=path_uuid(request)
    )
    headers = {"ETag": cached.etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("If-None-Match"), cached.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=cached.body, content_type="application/json", headers=headers)


@routes.route(
    "PATCH",
    "/api/products/{id}",
    summary="Change a product (admin)",
    auth="admin",
    body=ProductPatch,
    responses={200: ProductOut, 404: None, 409: None},
)
async def update_product(request: web.Request) -> web.Response:
    product_id = path_uuid(request)
    data = await json_body(request, ProductPatch)
    product = await service.update_product(
        pool=request.app[DB_POOL],
        cache=request.app[PRODUCT_CACHE],
        product_id=product_id,
        changes=data.model_dump(exclude_unset=True),
        actor=Actor.of(request),
    )
    return json_response(product)


@routes.route(
    "DELETE",
    "/api/products/{id}",
    summary="Retire a product (admin)",
    auth="admin",
    responses={204: None, 404: None},
)
async def delete_product(request: web.Request) -> web.Response:
    await service.delete_product(
        pool=request.app[DB_POOL],
        cache=request.app[PRODUCT_CACHE],
        product_id=path_uuid(request),
        actor=Actor.of(request),
    )
    return web.Response(status=204)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of `If-None-Match` against the current ETag."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
