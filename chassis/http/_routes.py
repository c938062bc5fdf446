"""Route tables whose declarations are enforced and documented: auth, write limits, OpenAPI."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from chassis.http._auth import Principal, admin, authenticated
from chassis.http._ratelimit import SAFE_METHODS, Handler, write_limited

Auth = Literal["public", "user", "admin"]
Response = type[BaseModel] | str | None


@dataclass(frozen=True)
class Header:
    """A request header an operation reads, as documented: required or not, and its shape."""

    description: str
    required: bool = False
    pattern: str | None = None
    # What Swagger UI's "Try it out" fills in.
    example: str | None = None


@dataclass(frozen=True)
class Upload:
    """A file the operation takes as `multipart/form-data`, in the form field `field`."""

    field: str
    description: str
    max_bytes: int


@dataclass(frozen=True)
class Operation:
    """One documented HTTP operation."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, Response]
    headers: dict[str, Header] = field(default_factory=dict)
    body_required: bool = True
    links: tuple[str, ...] = ()
    upload: Upload | None = None


class ApiRoutes:
    """A domain's route table whose decorators also describe each operation."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        responses: dict[int, Response],
        auth: Auth = "public",
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        query: type[BaseModel] | None = None,
        headers: dict[str, Header] | None = None,
        links: tuple[str, ...] = (),
        upload: Upload | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare and document a handler for `method path` (`body_required=False`: the handler
        reads an empty body as the model's defaults; `links`: the operations whose `{id}` is the
        `id` of this operation's answer; `upload`: the multipart file it takes)."""

        # What the declaration itself can answer is documented here, once, for every route.
        implied: dict[int, Response] = {}
        if auth != "public":
            implied[401] = None
        if auth == "admin":
            implied[403] = None
        if body is not None or upload is not None:
            implied.update({400: None, 413: None, 415: None, 422: None})
        if query is not None:
            implied[422] = None
        if method not in SAFE_METHODS:
            implied[429] = None
        responses = {**implied, **responses}

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    self.tag,
                    auth,
                    body,
                    query,
                    responses,
                    headers or {},
                    body_required,
                    links,
                    upload,
                )
            )
            return handler

        return register

    def add_to(self, app: web.Application) -> None:
        """Add every declared operation to the app's router, enforcing what it declares.

        `auth` is checked before the handler runs (the handler reads the cached principal), and
        state-changing operations pass the write rate limit first.
        """
        for op in self.operations:
            handler = op.handler if op.auth == "public" else _guarded(op.handler, _GUARDS[op.auth])
            if op.method == "GET":
                app.router.add_get(op.path, handler)  # answers HEAD too
            else:
                limited = handler if op.method in SAFE_METHODS else write_limited(handler)
                app.router.add_route(op.method, op.path, limited)


_GUARDS = {"user": authenticated, "admin": admin}


def _guarded(handler: Handler, guard: Callable[[web.Request], Awaitable[Principal]]) -> Handler:
    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        await guard(request)
        return await handler(request)

    return checked
