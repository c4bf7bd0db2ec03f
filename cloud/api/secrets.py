"""`/v1/secrets`: generic secrets (`secret-type=config`); data shown by `GET /{name}` only."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from agent.contracts.resources import Description, Labels, Name
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import AppUseList, app_uses, body_name, check_namespace, window
from cloud.api.routing import RouteTable
from cloud.services import secrets
from cloud.services.context import Caller
from cloud.services.secrets import GENERIC, SecretDraft, SecretMeta

routes = RouteTable(prefix="/v1")
TAGS = ("secrets",)


class SecretBody(WireModel):
    """A secret to create or replace; read-only view fields are accepted and ignored."""

    name: Name | None = None
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    data: dict[str, str] = Field(repr=False)
    version: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class SecretView(WireModel):
    """A secret (Baetyl's SecretView, plus labels); `data` only in `GET /secrets/{name}`."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    data: dict[str, str] | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class SecretPage(Page[SecretView]):
    """A page of secrets, without their data."""


def _view(meta: SecretMeta, data: dict[str, str] | None = None) -> SecretView:
    return SecretView(
        name=meta.name,
        namespace=meta.namespace,
        version=meta.version,
        labels=meta.labels,
        description=meta.description,
        data=data,
        create_time=meta.create_time,
        update_time=meta.update_time,
    )


def _draft(body: SecretBody, caller: Caller, path: str | None) -> SecretDraft:
    check_namespace(body.namespace, caller)
    return SecretDraft(
        name=body_name(body.name, path),
        labels=body.labels,
        description=body.description,
        data=body.data,
    )


@routes.route(
    "GET", "/secrets", summary="List secrets", query=ListQuery, response=SecretPage, tags=TAGS
)
async def list_secrets(request: web.Request) -> web.Response:
    """Secrets of the caller's namespace, newest first, never with their data."""
    query = read_query(request, ListQuery)
    found = await secrets.listing(caller_of(request), GENERIC, window(query))
    return reply(SecretPage.of(query, found.total, [_view(meta) for meta in found.items]))


@routes.route(
    "POST",
    "/secrets",
    summary="Create a secret",
    body=SecretBody,
    response=SecretView,
    tags=TAGS,
)
async def create_secret(request: web.Request) -> web.Response:
    """Create a secret; its data is encrypted before it is stored and not echoed back."""
    caller = caller_of(request)
    body = await read_body(request, SecretBody)
    meta = await secrets.create(request.app[CONTEXT], caller, _draft(body, caller, None))
    return reply(_view(meta))


@routes.route(
    "GET",
    "/secrets/{name}",
    summary="Get a secret with its data (admin token)",
    response=SecretView,
    access="admin",  # the plaintext data is a credential; read tokens list secrets, no more
    tags=TAGS,
)
async def get_secret(request: web.Request) -> web.Response:
    """One secret with its plaintext data."""
    ctx = request.app[CONTEXT]
    meta, data = await secrets.get(ctx, caller_of(request), path_param(request, "name"))
    return reply(_view(meta, data))


@routes.route(
    "PUT",
    "/secrets/{name}",
    summary="Replace a secret",
    body=SecretBody,
    response=SecretView,
    tags=TAGS,
)
async def replace_secret(request: web.Request) -> web.Response:
    """Replace a secret; apps that mount it get its new version when the data changed."""
    caller = caller_of(request)
    name = path_param(request, "name")
    body = await read_body(request, SecretBody)
    meta = await secrets.replace(request.app[CONTEXT], caller, name, _draft(body, caller, name))
    return reply(_view(meta))


@routes.route("DELETE", "/secrets/{name}", summary="Delete a secret", tags=TAGS)
async def delete_secret(request: web.Request) -> web.Response:
    """Delete a secret that no app mounts."""
    await secrets.delete(caller_of(request), GENERIC, path_param(request, "name"))
    return reply(None)


@routes.route(
    "GET",
    "/secrets/{name}/apps",
    summary="List the applications that mount a secret",
    response=AppUseList,
    tags=TAGS,
)
async def secret_apps(request: web.Request) -> web.Response:
    """The apps whose volumes mount the secret."""
    found = await secrets.users(caller_of(request), GENERIC, path_param(request, "name"))
    return reply(app_uses(found))
