"""The kinds a `/v1/yaml` file may hold, each bound to the body model and use cases of its own
REST routes: a document is parsed as `POST /v1/<kind>` parses its body, and created, replaced
and deleted by the same service calls, so the file follows every rule the routes follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from pydantic import BaseModel

from agent.contracts import names
from cloud.api import certificates, configs, node_views, nodes, registries, secrets
from cloud.api.http import parse_body
from cloud.api.resource_views import body_name, check_namespace
from cloud.api.stored_kinds import StoredKind
from cloud.errors import Invalid, NotFound
from cloud.services import apps
from cloud.services import nodes as node_service
from cloud.services.app_spec import ApplicationView
from cloud.services.context import Caller, CloudContext


class Kind(Protocol):
    """What the file's engine needs of a kind."""

    @property
    def word(self) -> str:
        """The kind's name in messages and results (`config`, `app`, ...)."""

    @property
    def update_differs(self) -> bool:
        """Whether a replace reads the body with another model than a create (nodes)."""

    def check_name(self, name: str) -> str:
        """The name, if a resource of the kind may have it (Invalid otherwise)."""

    def parse(self, raw: bytes, caller: Caller, *, existing: bool) -> tuple[str, Any]:
        """(name, body) of a JSON document, parsed and checked as its route does."""

    async def current(self, ctx: CloudContext, caller: Caller, name: str) -> BaseModel | None:
        """The resource's view as its route shows it, None when it does not exist."""

    async def create(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """Create it; the view its route answers."""

    async def replace(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """Replace it; the view its route answers."""

    async def delete(self, ctx: CloudContext, caller: Caller, name: str) -> None:
        """Delete it."""

    def same(self, before: BaseModel, after: BaseModel) -> bool:
        """Whether a replace left the resource as it was."""


def _same_view(before: BaseModel, after: BaseModel) -> bool:
    """A replace that changed nothing leaves the resource unwritten: same version, same update
    time (views differ otherwise: a secret's GET shows its data, its PUT answer does not)."""
    keys = ("version", "update_time")
    return all(getattr(before, key, None) == getattr(after, key, None) for key in keys)


@dataclass(frozen=True)
class StoredKindFiles:
    """Configurations, secrets, certificates and registries (cloud.api.stored_kinds)."""

    word: str
    kind: StoredKind[Any, Any, Any, Any]
    update_differs: bool = False

    def check_name(self, name: str) -> str:
        """A resource name."""
        return _checked_name(names.check_name, name)

    def parse(self, raw: bytes, caller: Caller, *, existing: bool) -> tuple[str, Any]:
        """The kind's body, as its POST route reads it."""
        body = parse_body(raw, self.kind.body)
        check_namespace(body.namespace, caller)
        return body_name(body.name, None), body

    async def current(self, ctx: CloudContext, caller: Caller, name: str) -> BaseModel | None:
        """As `GET /v1/<kind>/{name}` shows it."""
        try:
            return self.kind.show(await self.kind.service.get(ctx, caller, name))
        except NotFound:
            return None

    async def create(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `POST /v1/<kind>`."""
        created = await self.kind.service.create(ctx, caller, self.kind.draft(body, name))
        return self.kind.show(created)

    async def replace(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `PUT /v1/<kind>/{name}`."""
        draft = self.kind.draft(body, name)
        return self.kind.show(await self.kind.service.replace(ctx, caller, name, draft))

    async def delete(self, ctx: CloudContext, caller: Caller, name: str) -> None:
        """As `DELETE /v1/<kind>/{name}`."""
        await self.kind.service.delete(caller, name)

    def same(self, before: BaseModel, after: BaseModel) -> bool:
        """The views are equal."""
        return _same_view(before, after)


@dataclass(frozen=True)
class AppFiles:
    """Applications (`/v1/apps`)."""

    word: str = "app"
    update_differs: bool = False

    def check_name(self, name: str) -> str:
        """An application name."""
        return _checked_name(names.check_app_name, name)

    def parse(self, raw: bytes, caller: Caller, *, existing: bool) -> tuple[str, Any]:
        """An ApplicationView, as `POST /v1/apps` reads it."""
        view = parse_body(raw, ApplicationView)
        check_namespace(view.namespace, caller)
        return view.name, view

    async def current(self, ctx: CloudContext, caller: Caller, name: str) -> BaseModel | None:
        """As `GET /v1/apps/{name}` shows it."""
        try:
            return await apps.get(caller, name)
        except NotFound:
            return None

    async def create(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `POST /v1/apps`."""
        return await apps.create(ctx, caller, body)

    async def replace(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `PUT /v1/apps/{name}`."""
        return await apps.update(ctx, caller, name, body)

    async def delete(self, ctx: CloudContext, caller: Caller, name: str) -> None:
        """As `DELETE /v1/apps/{name}`."""
        await apps.delete(ctx, caller, name)

    def same(self, before: BaseModel, after: BaseModel) -> bool:
        """The views are equal."""
        return _same_view(before, after)


@dataclass(frozen=True)
class NodeFiles:
    """Nodes (`/v1/nodes`): a new one is read as `POST` reads it, an existing one as `PUT`."""

    word: str = "node"
    update_differs: bool = True

    def check_name(self, name: str) -> str:
        """A node name."""
        return _checked_name(names.check_name, name)

    def parse(self, raw: bytes, caller: Caller, *, existing: bool) -> tuple[str, Any]:
        """A NodeCreate, or a NodeUpdate (absent fields kept) for a node that exists."""
        if not existing:
            created = parse_body(raw, node_views.NodeCreate)
            check_namespace(created.namespace, caller)
            return created.name, created
        updated = parse_body(raw, node_views.NodeUpdate)
        check_namespace(updated.namespace, caller)
        if updated.name is None:
            raise Invalid("name: a name is required")
        return updated.name, updated

    async def current(self, ctx: CloudContext, caller: Caller, name: str) -> BaseModel | None:
        """As `POST /v1/nodes` answers (without desire and report)."""
        try:
            state = await node_service.get(ctx, caller, name)
        except NotFound:
            return None
        return node_views.node_view(state, desire=False, report=False)

    async def create(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `POST /v1/nodes`."""
        state = await node_service.create(ctx, caller, nodes.spec_of(body))
        return node_views.node_view(state, desire=False, report=False)

    async def replace(self, ctx: CloudContext, caller: Caller, name: str, body: Any) -> BaseModel:
        """As `PUT /v1/nodes/{name}`."""
        changes = await nodes.changes_of(ctx, caller, name, body)
        state = await node_service.update(ctx, caller, name, changes)
        return node_views.node_view(state, desire=False, report=False)

    async def delete(self, ctx: CloudContext, caller: Caller, name: str) -> None:
        """As `DELETE /v1/nodes/{name}`."""
        await node_service.delete(ctx, caller, name)

    def same(self, before: BaseModel, after: BaseModel) -> bool:
        """What a user sets on a node is unchanged (its version; readiness may move)."""
        return getattr(before, "version", None) == getattr(after, "version", None)


def _checked_name(check: Any, name: str) -> str:
    try:
        checked: str = check(name)
    except names.InvalidName as exc:
        raise Invalid(f"name: {exc}") from None
    return checked


REGISTRY: Final = StoredKindFiles("registry", registries.KIND)
SECRET: Final = StoredKindFiles("secret", secrets.KIND)
CERTIFICATE: Final = StoredKindFiles("certificate", certificates.KIND)
CONFIG: Final = StoredKindFiles("config", configs.KIND)
APP: Final = AppFiles()
NODE: Final = NodeFiles()
ORDER: Final[tuple[Kind, ...]] = (REGISTRY, SECRET, CERTIFICATE, CONFIG, APP, NODE)
"""The order of writes: what apps mount before the apps. Deletes run it backwards."""
BY_WORD: Final[dict[str, Kind]] = {
    **{kind.word: kind for kind in ORDER},
    "application": APP,
    "configuration": CONFIG,
}
"""The `kind` a Baetyl-Py document names (the route's own word, or its long name)."""
SECRET_FAMILY: Final = frozenset({"registry", "secret", "certificate"})
"""Kinds stored as one Secret row each: their names share one space."""
