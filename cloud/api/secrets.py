"""`/v1/secrets`: generic secrets (`secret-type=config`); data shown by `GET /{name}` only."""

from __future__ import annotations

from pydantic import Field

from cloud.api.listing import Page
from cloud.api.routing import RouteTable
from cloud.api.stored_kinds import ResourceBody, ResourceView, StoredKind, add_routes, view_fields
from cloud.services import secrets
from cloud.services.secrets import SecretDraft, SecretMeta, SecretShown

routes = RouteTable(prefix="/v1")


class SecretBody(ResourceBody):
    """A secret to create or replace; read-only view fields are accepted and ignored."""

    data: dict[str, str] = Field(repr=False)


class SecretView(ResourceView):
    """A secret (Baetyl's SecretView, plus labels); `data` only in `GET /secrets/{name}`."""

    data: dict[str, str] | None = None


class SecretPage(Page[SecretView]):
    """A page of secrets, without their data."""


def _listed(meta: SecretMeta) -> SecretView:
    return SecretView(**view_fields(meta))


def _shown(shown: SecretShown) -> SecretView:
    return SecretView(**view_fields(shown.meta), data=shown.data)


def _draft(body: SecretBody, name: str) -> SecretDraft:
    return SecretDraft(name=name, labels=body.labels, description=body.description, data=body.data)


KIND = StoredKind(
    path="/secrets",
    one="a secret",
    many="secrets",
    body=SecretBody,
    view=SecretView,
    page=SecretPage,
    service=secrets,
    draft=_draft,
    show=_shown,
    show_listed=_listed,
    get_summary="Get a secret with its data (admin token)",
    get_access="admin",  # the plaintext data is a credential; read tokens list secrets, no more
)
add_routes(routes, KIND)
