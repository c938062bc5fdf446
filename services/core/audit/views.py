"""HTTP views of the audit log."""

from __future__ import annotations

from aiohttp import web

from chassis.data import DB_POOL
from chassis.http import ApiRoutes, json_response, query_params
from services.core.audit import service
from services.core.audit.schemas import AuditPage, AuditQuery

routes = ApiRoutes("audit")


@routes.route(
    "GET",
    "/api/admin/audit",
    summary="Security events, oldest first, filtered by actor, action and time (admin)",
    auth="admin",
    query=AuditQuery,
    responses={200: AuditPage},
)
async def audit_log(request: web.Request) -> web.Response:
    query = query_params(request, AuditQuery)
    result = await service.entries(
        pool=request.app[DB_POOL],
        actor=None if query.actor is None else str(query.actor),
        action=query.action,
        since=query.since,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(result)
