"""`/v1/namespace`: the caller's own namespace (tenant), named by its token, never by the URL."""

from __future__ import annotations

from aiohttp import web

from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import RouteTable
from cloud.services import namespaces

TAGS = ("namespace",)
routes = RouteTable(prefix="/v1", tags=TAGS)


class NamespaceView(WireModel):
    """A namespace."""

    name: str


@routes.post("/namespace", "Create the caller's namespace", response=NamespaceView)
async def create_namespace(request: web.Request) -> web.Response:
    """Create the namespace of the caller's token (idempotent; any body is ignored, as Baetyl)."""
    return reply(NamespaceView(name=await namespaces.create(caller_of(request))))


@routes.get("/namespace", "Get the caller's namespace", response=NamespaceView)
async def get_namespace(request: web.Request) -> web.Response:
    """The caller's namespace, or 404 once it was deleted."""
    return reply(NamespaceView(name=await namespaces.get(caller_of(request))))


@routes.delete("/namespace", "Delete the caller's namespace")
async def delete_namespace(request: web.Request) -> web.Response:
    """Delete every resource of the caller's namespace (its tokens stay valid)."""
    await namespaces.delete(request.app[CONTEXT], caller_of(request))
    return reply(None)
