"""HTTP views of the users domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import ApiRoutes, authenticated, json_response, query_params
from services.core.auth.schemas import UserOut
from services.core.users import service
from services.core.users.schemas import PageQuery, UserPage

routes = ApiRoutes("users")


@routes.route(
    "GET",
    "/api/users/me",
    summary="The caller's account",
    auth="user",
    responses={200: UserOut},
)
async def me(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    return json_response(await service.me(pool=request.app[DB_POOL], user_id=principal.user_id))


@routes.route(
    "GET",
    "/api/users",
    summary="Every account (admin)",
    auth="admin",
    query=PageQuery,
    responses={200: UserPage},
)
async def list_users(request: web.Request) -> web.Response:
    query = query_params(request, PageQuery)
    result = await service.list_users(
        pool=request.app[DB_POOL], limit=query.limit, cursor=query.cursor
    )
    return json_response(result)
