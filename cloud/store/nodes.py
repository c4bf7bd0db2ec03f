"""Queries over nodes: rows as plain records, SQL paging, and the few joins the node routes need.

Listing 10,000 nodes must stay cheap: without a selector the page is cut in SQL (count, then
order + limit/offset); with one, only (id, name, labels) of every node is read, filtered in
memory, and the page's rows are then fetched by id. Every function costs a fixed number of
queries, whatever the page size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from cloud.errors import Conflict
from cloud.store.models import Application, AppNode, Node


@dataclass(frozen=True)
class NodeRecord:
    """One node row, detached from the ORM."""

    id: int
    namespace: str
    name: str
    labels: dict[str, str]
    description: str
    node_mode: str
    sync_mode: str
    attributes: dict[str, Any]
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class AppSummary:
    """What `GET /nodes/{name}/apps` shows of an app."""

    name: str
    version: str
    selector: str
    system: bool
    labels: dict[str, str]
    spec: dict[str, Any]
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class IndexEntry:
    """The columns a list filter looks at, for every node of a namespace."""

    id: int
    name: str
    labels: dict[str, str]


def _record(row: Node) -> NodeRecord:
    return NodeRecord(
        id=row.id,
        namespace=row.namespace,
        name=row.name,
        labels=dict(row.labels or {}),
        description=row.description,
        node_mode=row.node_mode,
        sync_mode=row.sync_mode,
        attributes=dict(row.attributes or {}),
        create_time=row.create_time,
        update_time=row.update_time,
    )


def _order(ascending: bool) -> tuple[str, str]:
    return ("create_time", "id") if ascending else ("-create_time", "-id")


async def insert(
    namespace: str,
    name: str,
    *,
    labels: dict[str, str],
    description: str,
    node_mode: str,
    attributes: dict[str, Any],
) -> NodeRecord:
    """Create a node row; Conflict when the name is taken (also by a concurrent request)."""
    try:
        row = await Node.create(
            namespace=namespace,
            name=name,
            labels=labels,
            description=description,
            node_mode=node_mode,
            attributes=attributes,
        )
    except IntegrityError as exc:
        raise Conflict(f"node {name} already exists") from exc
    return _record(row)


async def get(namespace: str, name: str, *, for_update: bool = False) -> NodeRecord | None:
    """One node, or None; `for_update` locks the row until the transaction ends (PostgreSQL)."""
    query = Node.filter(namespace=namespace, name=name)
    if for_update:
        query = query.select_for_update()
    row = await query.first()
    return None if row is None else _record(row)


async def get_many(namespace: str, names: Iterable[str]) -> dict[str, NodeRecord]:
    """The named nodes that exist, by name, in one query."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    return {
        row.name: _record(row) for row in await Node.filter(namespace=namespace, name__in=wanted)
    }


async def count(namespace: str) -> int:
    """How many nodes the namespace has."""
    return await Node.filter(namespace=namespace).count()


async def page(
    namespace: str, *, name: str, offset: int, limit: int | None, ascending: bool = False
) -> tuple[int, list[NodeRecord]]:
    """(total, nodes of one window) filtered by a name substring, newest first by default."""
    query = Node.filter(namespace=namespace)
    if name:
        query = query.filter(name__contains=name)
    total = await query.count()
    if limit == 0 or offset >= total:
        return total, []
    ordered = query.order_by(*_order(ascending)).offset(offset)
    rows = await (ordered.limit(limit) if limit is not None else ordered)
    return total, [_record(row) for row in rows]


async def index(namespace: str, *, name: str, ascending: bool = False) -> list[IndexEntry]:
    """(id, name, labels) of every node matching a name substring, in list order."""
    query = Node.filter(namespace=namespace)
    if name:
        query = query.filter(name__contains=name)
    rows = await query.order_by(*_order(ascending)).values_list("id", "name", "labels")
    return [IndexEntry(int(i), str(n), dict(labels or {})) for i, n, labels in rows]


async def by_ids(ids: list[int]) -> list[NodeRecord]:
    """Nodes by primary key, in the order given."""
    if not ids:
        return []
    found = {row.id: row for row in await Node.filter(id__in=ids)}
    return [_record(found[i]) for i in ids if i in found]


async def update(
    namespace: str,
    name: str,
    *,
    labels: dict[str, str],
    description: str,
    sync_mode: str,
    attributes: dict[str, Any],
    now: datetime,
) -> None:
    """Overwrite a node's changeable columns."""
    await Node.filter(namespace=namespace, name=name).update(
        labels=labels,
        description=description,
        sync_mode=sync_mode,
        attributes=attributes,
        update_time=now,
    )


async def delete(namespace: str, name: str) -> bool:
    """Remove a node and its app index rows; False when there was no such node."""
    deleted = await Node.filter(namespace=namespace, name=name).delete()
    await AppNode.filter(namespace=namespace, node=name).delete()
    return bool(deleted)


async def apps(namespace: str, names: Iterable[str]) -> list[AppSummary]:
    """The named apps that exist, ordered by name."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    rows = await Application.filter(namespace=namespace, name__in=wanted).order_by("name")
    return [
        AppSummary(
            name=row.name,
            version=row.version,
            selector=row.selector,
            system=row.system,
            labels=dict(row.labels or {}),
            spec=dict(row.spec or {}),
            create_time=row.create_time,
            update_time=row.update_time,
        )
        for row in rows
    ]
