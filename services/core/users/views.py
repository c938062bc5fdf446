"""HTTP views of the users domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import (
    TOKENS,
    ApiRoutes,
    authenticated,
    json_body,
    json_response,
    path_uuid,
    query_params,
)
from services.core.audit.service import Origin
from services.core.auth import service as auth_service
from services.core.auth.schemas import AuthOut, UserOut
from services.core.auth.views import NO_STORE
from services.core.keys import CORE_SETTINGS, PASSWORDS
from services.core.users import service
from services.core.users.schemas import PageQuery, PasswordChangeIn, SessionList, UserPage

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
    "/api/users/me/sessions",
    summary="The caller's logins: created, last used, user agent and address",
    auth="user",
    responses={200: SessionList},
)
async def my_sessions(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    result = await service.sessions(
        pool=request.app[DB_POOL],
        principal=principal,
        refresh_token_ttl=request.app[CORE_SETTINGS].refresh_token_ttl,
    )
    return json_response(result, headers=NO_STORE)


@routes.route(
    "DELETE",
    "/api/users/me/sessions/{id}",
    summary="End one of the caller's logins at once, on every instance",
    auth="user",
    responses={204: None, 404: None},
)
async def revoke_my_session(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    await service.revoke_session(
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        principal=principal,
        session_id=path_uuid(request),
        origin=Origin.of(request),
    )
    return web.Response(status=204)


@routes.route(
    "POST",
    "/api/users/me/password",
    summary="Change the caller's password (every other login ends; this one goes on)",
    auth="user",
    body=PasswordChangeIn,
    responses={200: AuthOut, 403: "The current password is wrong"},
)
async def change_password(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    data = await json_body(request, PasswordChangeIn)
    result = await auth_service.change_password(
        pool=request.app[DB_POOL],
        passwords=request.app[PASSWORDS],
        tokens=request.app[TOKENS],
        principal=principal,
        current_password=data.current_password,
        new_password=data.new_password,
        origin=Origin.of(request),
    )
    return json_response(result, headers=NO_STORE)


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


@routes.route(
    "POST",
    "/api/users/{id}/email-verification",
    summary="Vouch for an account's e-mail address (admin; audited)",
    auth="admin",
    responses={200: UserOut, 404: None},
)
async def verify_email_of(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    result = await service.verify_email_for(
        pool=request.app[DB_POOL],
        principal=principal,
        user_id=path_uuid(request),
        origin=Origin.of(request),
    )
    return json_response(result)
