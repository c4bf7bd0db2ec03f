"""Bearer-token authentication and role checks, applied to every route by its declared access."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud.api.keys import CALLER, ROUTES
from cloud.services import tokens
from cloud.services.context import Caller


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Resolve the caller from the token; refuse writes with a read token (DESIGN §6)."""
    resource = request.match_info.route.resource
    route = None
    if resource is not None:
        route = request.app[ROUTES].get((request.method, resource.canonical))
    if route is None or route.access == "anonymous":
        response: web.StreamResponse = await handler(request)
        return response
    caller = await tokens.authenticate(request.headers.get("Authorization"))
    if route.access == "admin":
        tokens.require_admin(caller)
    request[CALLER] = caller
    result: web.StreamResponse = await handler(request)
    return result


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller of a request (set by auth_middleware)."""
    return request[CALLER]
