"""`/v1/apps`: applications, with Baetyl's ApplicationView (registries, certificate volumes)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import check_namespace
from cloud.api.routing import RouteTable
from cloud.services import apps
from cloud.services.app_spec import ApplicationView

TAGS = ("applications",)
routes = RouteTable(prefix="/v1", tags=TAGS)


class AppPage(Page[ApplicationView]):
    """A page of applications."""


class ReferenceItem(WireModel):
    """A configuration or secret an app references, with its current version."""

    name: str
    version: str


class ReferenceList(WireModel):
    """What an app references of one kind."""

    total: int
    items: list[ReferenceItem] = Field(default_factory=list)


@routes.get("/apps", "List applications", query=ListQuery, response=AppPage)
async def list_apps(request: web.Request) -> web.Response:
    """Apps of the caller's namespace, newest first (`selector` on labels, `name` substring)."""
    query = read_query(request, ListQuery)
    offset, limit = query.window()
    found = await apps.listing(
        caller_of(request), selector=query.selector, name=query.name, offset=offset, limit=limit
    )
    return reply(AppPage.of(query, found.total, found.items))


@routes.post("/apps", "Create an application", body=ApplicationView, response=ApplicationView)
async def create_app(request: web.Request) -> web.Response:
    """Create an app; it is placed at once on every node its selector matches."""
    caller = caller_of(request)
    view = await read_body(request, ApplicationView)
    check_namespace(view.namespace, caller)
    return reply(await apps.create(request.app[CONTEXT], caller, view))


@routes.get("/apps/{name}", "Get an application", response=ApplicationView)
async def get_app(request: web.Request) -> web.Response:
    """One app."""
    return reply(await apps.get(caller_of(request), path_param(request, "name")))


@routes.put(
    "/apps/{name}",
    "Replace an application",
    body=ApplicationView,
    response=ApplicationView,
)
async def update_app(request: web.Request) -> web.Response:
    """Replace an app; nodes get the new version when what they run changed."""
    caller = caller_of(request)
    name = path_param(request, "name")
    view = await read_body(request, ApplicationView)
    check_namespace(view.namespace, caller)
    return reply(await apps.update(request.app[CONTEXT], caller, name, view))


@routes.delete("/apps/{name}", "Delete an application")
async def delete_app(request: web.Request) -> web.Response:
    """Delete an app; it leaves every node's desired state."""
    await apps.delete(request.app[CONTEXT], caller_of(request), path_param(request, "name"))
    return reply(None)


def _reference_route(what: str, kind: str, secret_type: str | None) -> None:
    async def handler(request: web.Request) -> web.Response:
        found = await apps.references(
            caller_of(request), path_param(request, "name"), kind=kind, secret_type=secret_type
        )
        items = [ReferenceItem(name=name, version=version) for name, version in found]
        return reply(ReferenceList(total=len(items), items=items))

    handler.__doc__ = f"The {what} the app mounts, with their current versions."
    routes.route(
        "GET",
        f"/apps/{{name}}/{what}",
        summary=f"List the {what} of an application",
        response=ReferenceList,
    )(handler)


_reference_route("configs", "configuration", None)
_reference_route("secrets", "secret", "config")
_reference_route("certificates", "secret", "certificate")
_reference_route("registries", "secret", "registry")
