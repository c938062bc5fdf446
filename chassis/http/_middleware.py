"""The edge middleware: request id, problem+json errors, access log and RED metrics."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from aiohttp import web

from chassis.http._problems import REQUEST_ID, problem_for
from chassis.telemetry import (
    ACCESS_LOG,
    METRICS,
    TRACER,
    end_server_span,
    is_synthetic,
    span_ids,
    start_server_span,
)

REQUEST_ID_HEADER = "X-Request-ID"
# W3C Trace Context Level 2: tells the client which trace served it.
TRACE_RESPONSE_HEADER = "traceresponse"
CLIENT_CLOSED_REQUEST = 499
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def route_template(request: web.Request) -> str:
    """The matched route's template (`/api/products/{id}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def edge_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tag the request with an id and a server span, answer every error as problem+json, then
    log and count it.

    One middleware rather than several: each layer costs a coroutine on every request.
    """
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # Ids need uniqueness, not secrecy: 128 random bits without a urandom syscall per request.
    request_id = (
        incoming if _WELL_FORMED_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"
    )
    request[REQUEST_ID] = request_id
    route = route_template(request)
    synthetic = is_synthetic(request.headers)
    tracer = request.app[TRACER]
    server_span = (
        start_server_span(tracer, request, route, request_id, synthetic=synthetic)
        if tracer
        else None
    )
    ids = span_ids(server_span[0]) if server_span else None
    metrics = request.app[METRICS]
    started = time.perf_counter()
    metrics.in_flight_now += 1
    status = CLIENT_CLOSED_REQUEST  # what is logged if the client goes away mid-request
    try:
        try:
            response: web.StreamResponse = await handler(request)
        except Exception as exc:
            response = problem_for(request, exc)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        if ids is not None:
            response.headers[TRACE_RESPONSE_HEADER] = f"00-{ids[0]}-{ids[1]}-0{int(ids[2])}"
        return response
    except web.HTTPException as exc:  # below 400 only (redirect, 304): passed on as raised
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.in_flight_now -= 1
        metrics.observe(request.method, route, status, elapsed, ids, synthetic=synthetic)
        request.app[ACCESS_LOG].write(request.method, route, status, elapsed, request_id, ids)
        end_server_span(server_span, status)
