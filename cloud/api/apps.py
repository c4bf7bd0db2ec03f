"""`/v1/apps`: applications, with Baetyl's ApplicationView (registries, certificate volumes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud.api import certificates as certificates_api
from cloud.api import configs as configs_api
from cloud.api import registries as registries_api
from cloud.api import secrets as secrets_api
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import check_namespace
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceView, StoredKind
from cloud.services import apps
from cloud.services.app_spec import ApplicationView
from cloud.services.resource_rules import Window

TAGS = ("applications",)
routes = RouteTable(prefix="/v1", tags=TAGS)


class AppPage(Page[ApplicationView]):
    """A page of applications."""


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


def _reference_route(
    what: str, kind: str, secret_type: str | None, stored: StoredKind[Any, Any, Any, Any]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        caller = caller_of(request)
        found = await apps.references(
            caller, path_param(request, "name"), kind=kind, secret_type=secret_type
        )
        wanted = dict(found)
        listed = await stored.service.listing(caller, Window())
        items = [
            _without_data(stored.show_listed(each))
            for each in listed.items
            if wanted.get(each.name) is not None
        ]
        items.sort(key=lambda view: view.name)
        return reply(stored.page.of(ListQuery(), len(items), items))

    handler.__doc__ = (
        f"The {what} the app uses, as `GET /v1/{what}` lists them (Baetyl's list, without data)."
    )
    routes.route(
        "GET",
        f"/apps/{{name}}/{what}",
        summary=f"List the {what} of an application",
        response=stored.page,
    )(handler)


def _without_data(view: ResourceView) -> ResourceView:
    """Baetyl lists an app's resources without their data (secret lists never carry it)."""
    return (
        view.model_copy(update={"data": []})
        if isinstance(getattr(view, "data", None), list)
        else view
    )


_reference_route("configs", "configuration", None, configs_api.KIND)
_reference_route("secrets", "secret", "config", secrets_api.KIND)
_reference_route("certificates", "secret", "certificate", certificates_api.KIND)
_reference_route("registries", "secret", "registry", registries_api.KIND)
