"""HTTP views of the auth domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import (
    RATE_LIMITER,
    TOKENS,
    ApiRoutes,
    authenticated,
    client_address,
    json_body,
    json_response,
)
from services.core.auth import service
from services.core.auth.schemas import AuthOut, LoginIn, LogoutIn, RefreshIn, RegisterIn
from services.core.keys import CORE_SETTINGS, PASSWORDS

routes = ApiRoutes("auth")
# Tokens are secrets: no cache (browser, proxy or CDN) may keep an answer that carries them.
NO_STORE = {"Cache-Control": "no-store"}


@routes.route(
    "POST",
    "/api/auth/register",
    summary="Create an account and log in",
    body=RegisterIn,
    responses={201: AuthOut, 409: None},
)
async def register(request: web.Request) -> web.Response:
    data = await json_body(request, RegisterIn)
    result = await service.register(
        pool=request.app[DB_POOL],
        passwords=request.app[PASSWORDS],
        tokens=request.app[TOKENS],
        email=str(data.email),
        password=data.password,
        name=data.name,
    )
    return json_response(result, status=201, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/login",
    summary="Log in with email and password",
    body=LoginIn,
    responses={200: AuthOut, 401: None},
)
async def login(request: web.Request) -> web.Response:
    data = await json_body(request, LoginIn)
    settings = request.app[CORE_SETTINGS]
    result = await service.login(
        pool=request.app[DB_POOL],
        passwords=request.app[PASSWORDS],
        tokens=request.app[TOKENS],
        limiter=request.app[RATE_LIMITER],
        limits=service.LoginLimits(
            settings.login_failure_limit, settings.login_account_failure_limit
        ),
        email=data.email,
        password=data.password,
        address=client_address(request),
    )
    return json_response(result, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/refresh",
    summary="Trade a refresh token for a new pair",
    body=RefreshIn,
    responses={200: AuthOut, 401: None},
)
async def refresh(request: web.Request) -> web.Response:
    data = await json_body(request, RefreshIn)
    result = await service.refresh(
        pool=request.app[DB_POOL], tokens=request.app[TOKENS], refresh_token=data.refresh_token
    )
    return json_response(result, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/logout",
    summary="Revoke this login's tokens",
    auth="user",
    body=LogoutIn,
    body_required=False,
    responses={204: None},
)
async def logout(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    data = await json_body(request, LogoutIn, optional=True)
    await service.logout(
        tokens=request.app[TOKENS], principal=principal, refresh_token=data.refresh_token
    )
    return web.Response(status=204)
