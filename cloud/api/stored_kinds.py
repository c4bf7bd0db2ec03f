"""The six routes of a stored kind: list, create, get, replace, delete and `/{name}/apps`.

Configurations, secrets, certificates and registries are answered the same way: the namespace
comes from the token, a body may carry the read-only fields of the view it came from (so a GET
result can be PUT back) but never another namespace or another name than the path's. Each kind's
module declares only what differs — its body, its view and its service — and `add_routes` writes
the handlers once, so a rule changed here holds for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web
from pydantic import Field

from agent.contracts.resources import Description, Labels, Name
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, read_query, reply
from cloud.api.keys import CONTEXT
from cloud.api.listing import ListQuery, Page
from cloud.api.resource_views import AppUseList, app_uses, body_name, check_namespace, window
from cloud.api.routing import Access, RouteTable
from cloud.services.context import Caller, CloudContext
from cloud.services.resource_rules import AppUse, Window


class ResourceBody(WireModel):
    """What every body of a stored kind has; the view's read-only fields are accepted, ignored."""

    name: Name | None = None
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    version: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None


class ResourceView(WireModel):
    """What every view of a stored kind shows."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None


class Stored(Protocol):
    """The stored facts a view starts from (a Configuration or a SecretMeta)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def version(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def description(self) -> str: ...
    @property
    def create_time(self) -> datetime | None: ...
    @property
    def update_time(self) -> datetime | None: ...


def view_fields(stored: Stored) -> dict[str, Any]:
    """The ResourceView fields of a stored resource, for a kind's view to add its own to."""
    return {
        "name": stored.name,
        "namespace": stored.namespace or "",
        "version": stored.version,
        "labels": dict(stored.labels),
        "description": stored.description,
        "create_time": stored.create_time,
        "update_time": stored.update_time,
    }


BodyT = TypeVar("BodyT", bound=ResourceBody)
DraftT = TypeVar("DraftT")
ShownT = TypeVar("ShownT")
ListedT = TypeVar("ListedT")
DraftT_contra = TypeVar("DraftT_contra", contravariant=True)
ShownT_co = TypeVar("ShownT_co", covariant=True)
ListedT_co = TypeVar("ListedT_co", covariant=True)


class Found(Protocol[ListedT_co]):
    """A service's list page: the items of the window and how many matched in all."""

    @property
    def total(self) -> int: ...
    @property
    def items(self) -> Sequence[ListedT_co]: ...


class KindService(Protocol[DraftT_contra, ShownT_co, ListedT_co]):
    """The use cases a stored kind's service module offers (the module itself is the object)."""

    async def create(
        self, ctx: CloudContext, caller: Caller, draft: DraftT_contra, /
    ) -> ShownT_co: ...
    async def get(self, ctx: CloudContext, caller: Caller, name: str, /) -> ShownT_co: ...
    async def listing(self, caller: Caller, window: Window, /) -> Found[ListedT_co]: ...
    async def replace(
        self, ctx: CloudContext, caller: Caller, name: str, draft: DraftT_contra, /
    ) -> ShownT_co: ...
    async def delete(self, caller: Caller, name: str, /) -> None: ...
    async def users(self, caller: Caller, name: str, /) -> list[AppUse]: ...


@dataclass(frozen=True)
class StoredKind(Generic[BodyT, DraftT, ShownT, ListedT]):
    """What one stored kind declares; `add_routes` makes its routes from it."""

    path: str  # the collection, e.g. "/configs"
    one: str  # "a configuration": summaries and docstrings are made from these names
    many: str  # "configurations"
    body: type[BodyT]
    view: type[ResourceView]
    page: type[Page[Any]]
    service: KindService[DraftT, ShownT, ListedT]
    draft: Callable[[BodyT, str], DraftT]  # the body as the service's draft, with its name
    show: Callable[[ShownT], ResourceView]  # what create, get and replace answer
    show_listed: Callable[[ListedT], ResourceView]  # one item of a list page
    used_as: str = "mount"  # "the applications that mount a configuration"
    get_summary: str = ""  # when it says more than "Get a configuration"
    get_access: Access | None = None


def add_routes(routes: RouteTable, kind: StoredKind[BodyT, DraftT, ShownT, ListedT]) -> None:
    """Add the kind's six routes to `routes`."""
    item = kind.path + "/{name}"

    async def draft_of(request: web.Request, caller: Caller, path: str | None) -> DraftT:
        body = await read_body(request, kind.body)
        check_namespace(body.namespace, caller)
        return kind.draft(body, body_name(body.name, path))

    async def list_all(request: web.Request) -> web.Response:
        query = read_query(request, ListQuery)
        found = await kind.service.listing(caller_of(request), window(query))
        items = [kind.show_listed(listed) for listed in found.items]
        return reply(kind.page.of(query, found.total, items))

    async def create(request: web.Request) -> web.Response:
        caller = caller_of(request)
        draft = await draft_of(request, caller, None)
        return reply(kind.show(await kind.service.create(request.app[CONTEXT], caller, draft)))

    async def get(request: web.Request) -> web.Response:
        ctx, name = request.app[CONTEXT], path_param(request, "name")
        return reply(kind.show(await kind.service.get(ctx, caller_of(request), name)))

    async def replace(request: web.Request) -> web.Response:
        caller, name = caller_of(request), path_param(request, "name")
        draft = await draft_of(request, caller, name)
        shown = await kind.service.replace(request.app[CONTEXT], caller, name, draft)
        return reply(kind.show(shown))

    async def delete(request: web.Request) -> web.Response:
        await kind.service.delete(caller_of(request), path_param(request, "name"))
        return reply(None)

    async def users(request: web.Request) -> web.Response:
        found = await kind.service.users(caller_of(request), path_param(request, "name"))
        return reply(app_uses(found))

    list_all.__doc__ = f"The {kind.many} of the caller's namespace, newest first."
    create.__doc__ = f"Create {kind.one} in the caller's namespace."
    get.__doc__ = f"Get {kind.one}."
    replace.__doc__ = f"Replace {kind.one}; apps using it get its new version when it changed."
    delete.__doc__ = f"Delete {kind.one} that no app uses."
    users.__doc__ = f"The applications that {kind.used_as} {kind.one}."
    tags = (kind.many,)
    routes.get(kind.path, f"List {kind.many}", query=ListQuery, response=kind.page, tags=tags)(
        list_all
    )
    routes.post(kind.path, f"Create {kind.one}", body=kind.body, response=kind.view, tags=tags)(
        create
    )
    routes.get(
        item,
        kind.get_summary or f"Get {kind.one}",
        response=kind.view,
        access=kind.get_access,
        tags=tags,
    )(get)
    routes.put(item, f"Replace {kind.one}", body=kind.body, response=kind.view, tags=tags)(replace)
    routes.delete(item, f"Delete {kind.one}", tags=tags)(delete)
    routes.get(
        item + "/apps",
        f"List the applications that {kind.used_as} {kind.one}",
        response=AppUseList,
        tags=tags,
    )(users)
