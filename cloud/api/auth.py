"""Authentication and role checks, applied to every route by its declared access.

Who calls is the authentication plug-in's answer (cloud.plugins; bearer tokens by default);
what the caller's role allows is decided here, the same whichever plug-in answered.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud.api.keys import CALLER, CONTEXT, ROUTES
from cloud.errors import Unavailable
from cloud.services import tokens
from cloud.services.context import Caller


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Resolve the caller with the authentication plug-in; refuse writes with a read role
    (DESIGN §6)."""
    resource = request.match_info.route.resource
    route = None
    if resource is not None:
        route = request.app[ROUTES].get((request.method, resource.canonical))
    if route is None or route.access == "anonymous":
        response: web.StreamResponse = await handler(request)
        return response
    auth = request.app[CONTEXT].auth
    if auth is None:
        raise Unavailable("no authentication plug-in is loaded")  # a misbuilt context
    caller: object = await auth.authenticate(request.headers)
    if not isinstance(caller, Caller) or caller.role not in tokens.ROLES:
        # A plug-in's bug: grant nothing (the error middleware answers 500 and logs it).
        raise TypeError(f"the authentication plug-in returned {caller!r}, not a Caller")
    if route.access == "admin":
        tokens.require_admin(caller)
    request[CALLER] = caller
    result: web.StreamResponse = await handler(request)
    return result


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller of a request (set by auth_middleware)."""
    return request[CALLER]
