"""`/v1/registries`: image registry credentials; the password is accepted, never returned."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints

from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import Page
from cloud.api.resource_views import check_namespace
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceBody, ResourceView, StoredKind, add_routes, view_fields
from cloud.errors import Invalid
from cloud.services import registries
from cloud.services.registries import ADDRESS, USERNAME, RegistryDraft
from cloud.services.secrets import SecretMeta

routes = RouteTable(prefix="/v1", tags=("registries",))

Address = Annotated[str, StringConstraints(max_length=512, pattern=r"^\S*$")]
Username = Annotated[str, StringConstraints(max_length=256)]
Password = Annotated[str, StringConstraints(max_length=4096)]


class RegistryBody(ResourceBody):
    """Registry credentials to create or replace; without `password` a replace keeps it.

    The read-only fields of the view are accepted and ignored, so a GET result can be PUT back.
    """

    address: Address
    username: Username
    password: Password | None = Field(default=None, repr=False)


class PasswordBody(WireModel):
    """A new registry password. Baetyl's clients send the whole registry, with `address` and
    `username` empty: the other fields are read and ignored (the registry is the path's), but
    `namespace` must be the token's and a non-empty address or username is refused."""

    password: Password = Field(repr=False)
    name: str | None = None
    namespace: str | None = None
    address: Any = None
    username: Any = None
    description: Any = None
    labels: Any = None
    create_time: Any = None
    update_time: Any = None


class RegistryView(ResourceView):
    """Registry credentials as shown: address and username, never the password."""

    address: str = ""
    username: str = ""


class RegistryPage(Page[RegistryView]):
    """A page of registries."""


def _view(meta: SecretMeta) -> RegistryView:
    return RegistryView(
        **view_fields(meta),
        address=str(meta.info.get(ADDRESS, "")),
        username=str(meta.info.get(USERNAME, "")),
    )


def _draft(body: RegistryBody, name: str) -> RegistryDraft:
    return RegistryDraft(
        name=name,
        address=body.address,
        username=body.username,
        password=body.password,
        labels=dict(body.labels),
        description=body.description,
    )


KIND = StoredKind(
    path="/registries",
    one="a registry",
    many="registries",
    body=RegistryBody,
    view=RegistryView,
    page=RegistryPage,
    service=registries,
    draft=_draft,
    show=_view,
    show_listed=_view,
    used_as="use",
)
add_routes(routes, KIND)


@routes.post(
    "/registries/{name}/refresh",
    "Set a registry's password",
    body=PasswordBody,
    response=RegistryView,
)
async def refresh_registry(request: web.Request) -> web.Response:
    """Replace the password; apps using the registry get its new version."""
    body = await read_body(request, PasswordBody)
    check_namespace(body.namespace, caller_of(request))
    name = path_param(request, "name")
    if body.address or body.username:  # Baetyl's clients send them empty
        raise Invalid(
            f"address, username: a refresh sets the password only; PUT /v1/registries/{name} "
            "changes the rest"
        )
    meta = await registries.refresh(request.app[CONTEXT], caller_of(request), name, body.password)
    return reply(_view(meta))
