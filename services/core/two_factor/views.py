"""HTTP views of two-factor sign-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import RATE_LIMITER, TOKENS, ApiRoutes, authenticated, json_body, json_response
from services.core.audit.service import Origin
from services.core.auth.schemas import (
    AuthOut,
    CodeIn,
    EnrolmentOut,
    RecoveryCodesOut,
    TwoFactorVerifyIn,
)
from services.core.auth.views import NO_STORE
from services.core.keys import CORE_SETTINGS
from services.core.two_factor import service

routes = ApiRoutes("two-factor")


def _attempts(request: web.Request) -> service.Attempts:
    return service.Attempts(
        request.app[RATE_LIMITER], request.app[CORE_SETTINGS].two_factor_attempt_limit
    )


async def _with_code(request: web.Request, action: Callable[..., Awaitable[Any]]) -> Any:
    """Run a change of the caller's second factor that a fresh code must prove."""
    principal = await authenticated(request)
    data = await json_body(request, CodeIn)
    return await action(
        pool=request.app[DB_POOL],
        attempts=_attempts(request),
        principal=principal,
        code=data.code,
        origin=Origin.of(request),
    )


@routes.route(
    "POST",
    "/api/auth/2fa/enrol",
    summary="Start two-factor enrolment: a TOTP secret, its otpauth:// URI and QR code",
    auth="user",
    responses={200: EnrolmentOut, 409: None},
)
async def enrol_two_factor(request: web.Request) -> web.Response:
    principal = await authenticated(request)
    result = await service.enrol(
        pool=request.app[DB_POOL],
        principal=principal,
        issuer=request.app[CORE_SETTINGS].totp_issuer,
    )
    return json_response(result, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/2fa/confirm",
    summary="Turn two-factor sign-in on with a first code: ten recovery codes, shown once",
    auth="user",
    body=CodeIn,
    responses={200: RecoveryCodesOut, 409: None},
)
async def confirm_two_factor(request: web.Request) -> web.Response:
    return json_response(await _with_code(request, service.confirm), headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/2fa/verify",
    summary="Complete a login's challenge with a TOTP or recovery code",
    body=TwoFactorVerifyIn,
    responses={200: AuthOut, 401: None},
)
async def verify_two_factor(request: web.Request) -> web.Response:
    data = await json_body(request, TwoFactorVerifyIn)
    result = await service.verify(
        pool=request.app[DB_POOL],
        tokens=request.app[TOKENS],
        attempts=_attempts(request),
        challenge=data.challenge,
        code=data.code,
        origin=Origin.of(request),
    )
    return json_response(result, headers=NO_STORE)


@routes.route(
    "POST",
    "/api/auth/2fa/disable",
    summary="Turn two-factor sign-in off with a fresh code (or a recovery code)",
    auth="user",
    body=CodeIn,
    responses={204: None, 409: None},
)
async def disable_two_factor(request: web.Request) -> web.Response:
    await _with_code(request, service.turn_off)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/api/auth/2fa/recovery-codes",
    summary="Replace the recovery codes, with a fresh code",
    auth="user",
    body=CodeIn,
    responses={200: RecoveryCodesOut, 409: None},
)
async def replace_recovery_codes(request: web.Request) -> web.Response:
    result = await _with_code(request, service.replace_recovery_codes)
    return json_response(result, headers=NO_STORE)
