"""Queries over applications and the two indexes that route them: app → nodes, app → resources."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloud.store import rawsql
from cloud.store.models import (
    Application,
    AppNode,
    AppResource,
    Configuration,
    Node,
    Secret,
)

_DELETE_INDEX_SQLITE = (
    'DELETE FROM "baetyl_index_application_node" WHERE "namespace" = ? AND "app" = ? AND "node" = ?'
)
_DELETE_INDEX_PG = (
    'DELETE FROM "baetyl_index_application_node" '
    'WHERE "namespace" = $1 AND "app" = $2 AND "node" = $3'
)
_INSERT_INDEX_SQLITE = (
    'INSERT INTO "baetyl_index_application_node" ("namespace", "app", "node") VALUES (?, ?, ?)'
)
_INSERT_INDEX_PG = (
    'INSERT INTO "baetyl_index_application_node" ("namespace", "app", "node") VALUES ($1, $2, $3)'
)


@dataclass(frozen=True)
class AppTarget:
    """What matching needs of an app: where it goes and which version."""

    name: str
    version: str
    selector: str
    system: bool


async def get(namespace: str, name: str) -> Application | None:
    """One app."""
    return await Application.get_or_none(namespace=namespace, name=name)


async def get_many(namespace: str, names: Iterable[str]) -> list[Application]:
    """Several apps by name."""
    return await Application.filter(namespace=namespace, name__in=list(names))


async def page(
    namespace: str, *, name: str, offset: int, limit: int | None
) -> tuple[int, list[Application]]:
    """(total, apps of the window), newest first, optionally filtered by a name substring."""
    query = Application.filter(namespace=namespace)
    if name:
        query = query.filter(name__contains=name)
    total = await query.count()
    ordered = query.order_by("-create_time", "-id").offset(offset)
    rows = await (ordered.limit(limit) if limit is not None else ordered)
    return total, list(rows)


async def all_labels(namespace: str, *, name: str) -> list[tuple[int, dict[str, str]]]:
    """(id, labels) of every app (for selector filtering), newest first."""
    query = Application.filter(namespace=namespace)
    if name:
        query = query.filter(name__contains=name)
    rows = await query.order_by("-create_time", "-id").values_list("id", "labels")
    return [(int(i), dict(labels)) for i, labels in rows]


async def by_ids(ids: list[int]) -> list[Application]:
    """Apps by primary key, in the order given."""
    found = {row.id: row for row in await Application.filter(id__in=ids)}
    return [found[i] for i in ids if i in found]


async def save(
    namespace: str,
    name: str,
    *,
    version: str,
    selector: str,
    system: bool,
    labels: dict[str, str],
    spec: dict[str, Any],
) -> Application:
    """Insert or update one app row."""
    row = await Application.get_or_none(namespace=namespace, name=name)
    if row is None:
        return await Application.create(
            namespace=namespace,
            name=name,
            version=version,
            selector=selector,
            system=system,
            labels=labels,
            spec=spec,
        )
    row.version, row.selector, row.system, row.labels, row.spec = (
        version,
        selector,
        system,
        labels,
        spec,
    )
    await row.save()
    return row


async def delete(namespace: str, name: str) -> None:
    """Remove an app and its resource index rows (node index rows go with the desired update)."""
    await Application.filter(namespace=namespace, name=name).delete()
    await AppResource.filter(namespace=namespace, app=name).delete()


async def targets(namespace: str, names: Iterable[str] | None = None) -> list[AppTarget]:
    """Matching data of the namespace's apps (all, or the named ones)."""
    query = Application.filter(namespace=namespace)
    if names is not None:
        query = query.filter(name__in=list(names))
    rows = await query.values_list("name", "version", "selector", "system")
    return [AppTarget(str(n), str(v), str(s), bool(system)) for n, v, s, system in rows]


async def unplaced() -> list[tuple[str, str, dict[str, object]]]:
    """(namespace, name, spec) of every app with an empty matching selector, all namespaces
    (the deferred ones among them: cloud.services.deferred)."""
    rows = await Application.filter(selector="").values_list("namespace", "name", "spec")
    return [(str(ns), str(name), dict(spec)) for ns, name, spec in rows]


async def node_labels(
    namespace: str, names: Iterable[str] | None = None
) -> dict[str, dict[str, str]]:
    """Labels of the namespace's nodes (all, or the named ones)."""
    query = Node.filter(namespace=namespace)
    if names is not None:
        query = query.filter(name__in=list(names))
    return {str(n): dict(labels) for n, labels in await query.values_list("name", "labels")}


async def nodes_of_apps(namespace: str, apps: Iterable[str]) -> set[str]:
    """Nodes that currently receive any of `apps` (the app → node index)."""
    rows = await AppNode.filter(namespace=namespace, app__in=list(apps)).values_list(
        "node", flat=True
    )
    return {str(node) for node in rows}


async def apps_of_node(namespace: str, node: str) -> list[str]:
    """Apps a node currently receives, by name."""
    rows = (
        await AppNode.filter(namespace=namespace, node=node)
        .order_by("app")
        .values_list("app", flat=True)
    )
    return [str(app) for app in rows]


async def set_node_index(
    namespace: str, *, added: Iterable[tuple[str, str]], removed: Iterable[tuple[str, str]]
) -> None:
    """Apply (app, node) index changes, each kind in one prepared statement run per row.

    An app that matches (or leaves) 10,000 nodes changes 10,000 rows; building that SQL with
    the ORM costs more than the database work.
    """
    connection = rawsql.connection()
    postgres = rawsql.is_postgres(connection)
    gone = [[namespace, app, node] for app, node in removed]
    if gone:
        await connection.execute_many(_DELETE_INDEX_PG if postgres else _DELETE_INDEX_SQLITE, gone)
    new = [[namespace, app, node] for app, node in added]
    if new:
        await connection.execute_many(_INSERT_INDEX_PG if postgres else _INSERT_INDEX_SQLITE, new)


async def set_resources(namespace: str, app: str, refs: Iterable[tuple[str, str]]) -> None:
    """Replace the (kind, name) resources app `app` references."""
    await AppResource.filter(namespace=namespace, app=app).delete()
    rows = [AppResource(namespace=namespace, app=app, kind=k, name=n) for k, n in set(refs)]
    if rows:
        await AppResource.bulk_create(rows)


async def resources_of(namespace: str, app: str) -> list[tuple[str, str]]:
    """(kind, name) of what app `app` references."""
    rows = await AppResource.filter(namespace=namespace, app=app).order_by("kind", "name")
    return [(row.kind, row.name) for row in rows]


async def apps_using(namespace: str, kind: str, name: str) -> list[str]:
    """Names of the apps that reference resource (kind, name)."""
    rows = (
        await AppResource.filter(namespace=namespace, kind=kind, name=name)
        .order_by("app")
        .values_list("app", flat=True)
    )
    return [str(app) for app in rows]


async def resource_versions(
    namespace: str, configs: Iterable[str], secrets: Iterable[str]
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Current versions of the named configs, and (version, secret-type) of the named secrets."""
    config_rows = await Configuration.filter(
        namespace=namespace, name__in=list(configs)
    ).values_list("name", "version")
    secret_rows = await Secret.filter(namespace=namespace, name__in=list(secrets)).values_list(
        "name", "version", "secret_type"
    )
    return (
        {str(n): str(v) for n, v in config_rows},
        {str(n): (str(v), str(t)) for n, v, t in secret_rows},
    )
