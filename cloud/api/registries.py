"""`/v1/registries`: image registry credentials; the password is accepted, never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from agent.contracts.resources import Description, Labels, Name
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import AppUseList, app_uses, body_name, check_namespace, window
from cloud.api.routing import RouteTable
from cloud.services import registries
from cloud.services.context import Caller
from cloud.services.registries import ADDRESS, USERNAME, RegistryDraft
from cloud.services.secrets import SecretMeta

routes = RouteTable(prefix="/v1")
TAGS = ("registries",)

Address = Annotated[str, StringConstraints(max_length=512, pattern=r"^\S*$")]
Username = Annotated[str, StringConstraints(max_length=256)]
Password = Annotated[str, StringConstraints(max_length=4096)]


class RegistryBody(WireModel):
    """Registry credentials to create or replace; without `password` a replace keeps it.

    The read-only fields of the view are accepted and ignored, so a GET result can be PUT back.
    """

    name: Name | None = None
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    address: Address
    username: Username
    password: Password | None = Field(default=None, repr=False)
    version: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class PasswordBody(WireModel):
    """A new registry password."""

    password: Password = Field(repr=False)


class RegistryView(WireModel):
    """Registry credentials as shown: address and username, never the password."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    address: str = ""
    username: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None


class RegistryPage(Page[RegistryView]):
    """A page of registries."""


def _view(meta: SecretMeta) -> RegistryView:
    return RegistryView(
        name=meta.name,
        namespace=meta.namespace,
        version=meta.version,
        labels=meta.labels,
        description=meta.description,
        address=str(meta.info.get(ADDRESS, "")),
        username=str(meta.info.get(USERNAME, "")),
        create_time=meta.create_time,
        update_time=meta.update_time,
    )


def _draft(body: RegistryBody, caller: Caller, path: str | None) -> RegistryDraft:
    check_namespace(body.namespace, caller)
    return RegistryDraft(
        name=body_name(body.name, path),
        address=body.address,
        username=body.username,
        password=body.password,
        labels=dict(body.labels),
        description=body.description,
    )


@routes.route(
    "GET",
    "/registries",
    summary="List registries",
    query=ListQuery,
    response=RegistryPage,
    tags=TAGS,
)
async def list_registries(request: web.Request) -> web.Response:
    """Registries of the caller's namespace, newest first."""
    query = read_query(request, ListQuery)
    found = await registries.listing(caller_of(request), window(query))
    return reply(RegistryPage.of(query, found.total, [_view(m) for m in found.items]))


@routes.route(
    "POST",
    "/registries",
    summary="Create a registry",
    body=RegistryBody,
    response=RegistryView,
    tags=TAGS,
)
async def create_registry(request: web.Request) -> web.Response:
    """Store registry credentials (address, username and password)."""
    caller = caller_of(request)
    body = await read_body(request, RegistryBody)
    meta = await registries.create(request.app[CONTEXT], caller, _draft(body, caller, None))
    return reply(_view(meta))


@routes.route(
    "GET", "/registries/{name}", summary="Get a registry", response=RegistryView, tags=TAGS
)
async def get_registry(request: web.Request) -> web.Response:
    """One registry (never its password)."""
    return reply(_view(await registries.get(caller_of(request), path_param(request, "name"))))


@routes.route(
    "PUT",
    "/registries/{name}",
    summary="Replace a registry",
    body=RegistryBody,
    response=RegistryView,
    tags=TAGS,
)
async def replace_registry(request: web.Request) -> web.Response:
    """Replace a registry; apps using it get its new version when the credentials changed."""
    caller = caller_of(request)
    name = path_param(request, "name")
    body = await read_body(request, RegistryBody)
    meta = await registries.replace(request.app[CONTEXT], caller, name, _draft(body, caller, name))
    return reply(_view(meta))


@routes.route(
    "POST",
    "/registries/{name}/refresh",
    summary="Set a registry's password",
    body=PasswordBody,
    response=RegistryView,
    tags=TAGS,
)
async def refresh_registry(request: web.Request) -> web.Response:
    """Replace the password; apps using the registry get its new version."""
    body = await read_body(request, PasswordBody)
    name = path_param(request, "name")
    meta = await registries.refresh(request.app[CONTEXT], caller_of(request), name, body.password)
    return reply(_view(meta))


@routes.route("DELETE", "/registries/{name}", summary="Delete a registry", tags=TAGS)
async def delete_registry(request: web.Request) -> web.Response:
    """Delete registry credentials that no app uses."""
    await registries.delete(caller_of(request), path_param(request, "name"))
    return reply(None)


@routes.route(
    "GET",
    "/registries/{name}/apps",
    summary="List the applications that use a registry",
    response=AppUseList,
    tags=TAGS,
)
async def registry_apps(request: web.Request) -> web.Response:
    """The apps that pull images with these credentials."""
    found = await registries.users(caller_of(request), path_param(request, "name"))
    return reply(app_uses(found))
