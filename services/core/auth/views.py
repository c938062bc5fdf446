"""HTTP views of the auth domain."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import (
    RATE_LIMITER,
    TOKENS,
    ApiRoutes,
    authenticated,
    json_body,
    json_response,
    query_params,
)
from services.core.audit.service import Origin
from services.core.auth import service
from services.core.auth.schemas import (
    AuthOut,
    LoginIn,
    LoginOut,
    LogoutIn,
    RefreshIn,
    RegisterIn,
    ResetConfirmIn,
    ResetRequestIn,
    UserOut,
    VerifyEmailIn,
)
from services.core.keys import CORE_SETTINGS, MAILER, PASSWORDS

routes = ApiRoutes("auth")
# Tokens are secrets: no cache (browser, proxy or CDN) may keep an answer that carries them.
NO_STORE = {"Cache-Control": "no-store"}


def _links(request: web.Request) -> service.Links:
    return service.Links.of(request.app[CORE_SETTINGS])


@routes.route(
    "POST",
    "/api/auth/register",
    summary="Create an account, log in, and get the e-mail's verification link mailed",
    body=RegisterIn,
    responses={201: AuthOut, 409: None},
)
async def register(request: web.Request) -> web.Response:
    data = await json_body(request, RegisterIn)
    result = await service.register(
        pool=request.app[DB_POOL],
        passwords=request.app[PASSWORDS],
        tokens=request.app[TOKENS],
        mailer=request.app[MAILER],
        links=_links(request),
        email=str(data.email),
        password=data.password,
        name=data.name,
        origin=Origin.of(request),
    )
    return json_response(result, status=201, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/login",
    summary="Log in with email and password (a challenge when two-factor sign-in is on)",
    body=LoginIn,
    responses={200: LoginOut, 401: None},
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
        challenge_ttl=settings.two_factor_challenge_ttl,
        email=data.email,
        password=data.password,
        origin=Origin.of(request),
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
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        refresh_token=data.refresh_token,
        origin=Origin.of(request),
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
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        principal=principal,
        refresh_token=data.refresh_token,
        origin=Origin.of(request),
    )
    return web.Response(status=204)


async def _verify_email(request: web.Request, token: str) -> web.Response:
    user = await service.verify_email(
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        token=token,
        origin=Origin.of(request),
    )
    return json_response(user, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/verify-email",
    summary="Prove the account's e-mail address with the token its verification link carries",
    body=VerifyEmailIn,
    responses={200: UserOut, 409: None},
)
async def verify_email(request: web.Request) -> web.Response:
    data = await json_body(request, VerifyEmailIn)
    return await _verify_email(request, data.token)


@routes.route(
    "GET",
    "/api/auth/verify-email",
    summary="The verification link itself, as mailed (the same as its POST)",
    query=VerifyEmailIn,
    responses={200: UserOut, 400: None, 409: None},
)
async def open_verification_link(request: web.Request) -> web.Response:
    query = query_params(request, VerifyEmailIn)
    return await _verify_email(request, query.token)


@routes.route(
    "POST",
    "/api/auth/verify-email/resend",
    summary="Mail the caller's verification link again",
    auth="user",
    responses={202: None, 409: None, 503: None},
)
async def resend_verification(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    await service.resend_verification(
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        mailer=request.app[MAILER],
        links=_links(request),
        user_id=principal.user_id,
    )
    return web.Response(status=202)


@routes.route(
    "POST",
    "/api/auth/password-reset",
    summary="Mail a password reset link to the account of this address, if there is one",
    body=ResetRequestIn,
    responses={202: None},
)
async def request_password_reset(request: web.Request) -> web.Response:
    data = await json_body(request, ResetRequestIn)
    await service.request_reset(
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        mailer=request.app[MAILER],
        links=_links(request),
        limiter=request.app[RATE_LIMITER],
        limit=request.app[CORE_SETTINGS].password_reset_limit,
        email=data.email,
        origin=Origin.of(request),
    )
    return web.Response(status=202)


@routes.route(
    "POST",
    "/api/auth/password-reset/confirm",
    summary="Set a new password with a reset link's token (every login of the account ends)",
    body=ResetConfirmIn,
    responses={204: None},
)
async def confirm_password_reset(request: web.Request) -> web.Response:
    data = await json_body(request, ResetConfirmIn)
    await service.confirm_reset(
        pool=request.app[DB_POOL],
        passwords=request.app[PASSWORDS],
        tokens=request.app[TOKENS],
        token=data.token,
        password=data.password,
        origin=Origin.of(request),
    )
    return web.Response(status=204, headers=NO_STORE)
