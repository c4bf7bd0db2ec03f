"""Rules configurations and secrets share: reserved names, size errors, list filtering, users.

Both kinds are mounted by apps through the app → resource index, refuse names that contain
`baetyl` (reserved for what the cloud itself creates), hide system resources from lists and may
not be deleted while an app uses them (Baetyl's `ErrResourceHasBeenUsed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from agent.contracts import selectors
from agent.contracts.resources import ResourceKind
from agent.contracts.wire import describe_errors
from cloud.errors import InUse, Invalid
from cloud.store import apps as app_store

SYSTEM_LABEL = "baetyl-cloud-system"
RESERVED_WORD = "baetyl"
T = TypeVar("T")


class DataTooLarge(Invalid):
    """Configuration or secret data over its size limit (Baetyl's code, still a 400)."""

    code = "ErrDataTooLarge"


@dataclass(frozen=True)
class AppUse:
    """An app that mounts a configuration or secret, as `GET /{kind}/{name}/apps` lists it."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str]
    selector: str
    description: str
    create_time: datetime | None


@dataclass(frozen=True)
class Window:
    """Which part of a list a request wants: label selector, name substring and page."""

    selector: str = ""
    name: str = ""
    offset: int = 0
    limit: int | None = None


def refuse_reserved_name(name: str, what: str) -> None:
    """Invalid if a user-chosen name contains `baetyl`: those names belong to system resources."""
    if RESERVED_WORD in name.lower():
        raise Invalid(
            f"name: {what} name {name!r} must not contain {RESERVED_WORD!r} "
            "(reserved for resources the cloud creates)"
        )


def invalid_from(exc: ValidationError, what: str) -> Invalid:
    """An Invalid that names every field a validation error points at."""
    return Invalid(f"invalid {what}: " + "; ".join(describe_errors(exc)))


def pick(index: Sequence[tuple[T, dict[str, str]]], window: Window) -> tuple[int, list[T]]:
    """(total, keys of the page) of a newest-first (key, labels) index, filtered by selector.

    As in Baetyl, resources labelled `baetyl-cloud-system` are hidden unless the selector
    mentions that label, and paging applies after filtering.
    """
    try:
        match = selectors.parse(window.selector) if window.selector.strip() else None
    except selectors.SelectorError as exc:
        raise Invalid(f"selector: {exc}") from exc
    show_system = SYSTEM_LABEL in window.selector
    keys = [
        key
        for key, labels in index
        if (show_system or SYSTEM_LABEL not in labels) and (match is None or match.matches(labels))
    ]
    end = None if window.limit is None else window.offset + window.limit
    return len(keys), keys[window.offset : end]


async def apps_using(namespace: str, kind: ResourceKind, name: str) -> list[AppUse]:
    """The apps of `namespace` whose volumes mount resource (kind, name), by name."""
    names = await app_store.apps_using(namespace, kind.value, name)
    if not names:
        return []
    rows = await app_store.get_many(namespace, names)
    uses = [
        AppUse(
            name=row.name,
            namespace=row.namespace,
            version=row.version,
            labels=dict(row.labels),
            selector=row.selector,
            description=str(row.spec.get("description", "")),
            create_time=row.create_time,
        )
        for row in rows
    ]
    return sorted(uses, key=lambda use: use.name)


async def refuse_if_used(namespace: str, kind: ResourceKind, name: str, what: str) -> None:
    """InUse (403 `ErrResourceHasBeenUsed`) if any app mounts the resource."""
    users = await app_store.apps_using(namespace, kind.value, name)
    if users:
        raise InUse(
            f"The {what} ({name}) is used by application(s) {', '.join(users)}; "
            "remove it from them before deleting it"
        )
