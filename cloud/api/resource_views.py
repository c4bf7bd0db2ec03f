"""REST pieces shared by configs, secrets, certificates and registries routes.

`GET /{kind}/{name}/apps` answers the same list everywhere; bodies may carry the read-only fields
of the views they came from (so a GET result can be PUT back) but never another namespace.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from agent.contracts.wire import WireModel
from cloud.api.listing import ListQuery
from cloud.errors import Invalid
from cloud.services.context import Caller
from cloud.services.resource_rules import AppUse, Window


class AppUseView(WireModel):
    """An application that mounts the resource (Baetyl's AppItem fields)."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str] = Field(default_factory=dict)
    selector: str = ""
    description: str = ""
    create_time: datetime | None = None


class AppUseList(WireModel):
    """The applications that mount a configuration, secret, certificate or registry."""

    total: int
    items: list[AppUseView] = Field(default_factory=list)


def app_uses(uses: list[AppUse]) -> AppUseList:
    """The response of `GET /{kind}/{name}/apps`."""
    items = [
        AppUseView(
            name=use.name,
            namespace=use.namespace,
            version=use.version,
            labels=use.labels,
            selector=use.selector,
            description=use.description,
            create_time=use.create_time,
        )
        for use in uses
    ]
    return AppUseList(total=len(items), items=items)


def window(query: ListQuery) -> Window:
    """The service-side list window of a list query."""
    offset, limit = query.window()
    return Window(selector=query.selector, name=query.name, offset=offset, limit=limit)


def body_name(given: str | None, path: str | None) -> str:
    """The resource name of a write: the body's, which must match the path's when both exist."""
    if path is None:
        if not given:
            raise Invalid("name: a name is required")
        return given
    if given is not None and given != path:
        raise Invalid(f"name: the body names {given!r} but the path {path!r}")
    return path


def check_namespace(given: str | None, caller: Caller) -> None:
    """Refuse a body that names another namespace: the namespace comes from the token."""
    if given is not None and given != caller.namespace:
        raise Invalid(
            f"namespace: the token's namespace is {caller.namespace!r}; the body names {given!r}"
        )
