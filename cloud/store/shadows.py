"""Shadow rows ↔ shadow documents (DESIGN §5), with optimistic concurrency on every write.

A row keeps the writable sections and their metadata; the delta is never stored, it is
recomputed from desired and reported on load, so it can never disagree with them. Writes name the
version they were computed from and update only if the row still holds it (`WHERE version = ?`),
so concurrent writers — several cloud replicas — never lose an update: the loser gets Conflict
and recomputes.

The per-report path (`load_document`, `save_document`) runs plain SQL with orjson, as Tortoise
itself would encode the JSON columns: building each query through the ORM cost more CPU than the
database spent on it (bench/fleet.py, docs/performance-notes.md "Fleet").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts import shadow
from cloud.errors import Conflict
from cloud.store import rawsql
from cloud.store.models import Shadow

Document = dict[str, Any]

_SECTIONS: Final = ("desired", "reported", "desired_meta", "reported_meta")
_SELECT: Final = (
    'SELECT "desired", "reported", "desired_meta", "reported_meta", "version", "timestamp" '
    'FROM "baetyl_node_shadow" WHERE "namespace" = {0} AND "name" = {1} LIMIT 1{lock}'
)
_SELECT_MANY: Final = (
    'SELECT "name", "desired", "reported", "desired_meta", "reported_meta", "version", '
    '"timestamp", "report_time", "online", "presence_time" '
    'FROM "baetyl_node_shadow" WHERE "namespace" = {0} AND "name" {1}'
)
_BATCH: Final = 500  # SQLite: bound parameters per statement stay well under its limit
# A NULL report time keeps the stored one (writes that do not come from the node).
_UPDATE: Final = (
    'UPDATE "baetyl_node_shadow" SET "desired" = {0}, "reported" = {1}, "desired_meta" = {2}, '
    '"reported_meta" = {3}, "version" = {4}, "timestamp" = {5}, '
    '"report_time" = COALESCE({6}, "report_time") '
    'WHERE "namespace" = {7} AND "name" = {8} AND "version" = {9}'
)


@dataclass(frozen=True)
class Liveness:
    """What the cloud knows of a node's connection: its last report and its MQTT presence.

    `online` is None until a presence message arrived; `presence_time` is when it arrived.
    """

    report_time: float | None = None
    online: bool | None = None
    presence_time: float | None = None


def _assemble(
    desired: Document,
    reported: Document,
    desired_meta: Document,
    reported_meta: Document,
    *,
    version: int,
    timestamp: float,
) -> Document:
    return {
        "state": {
            shadow.DESIRED: desired,
            shadow.REPORTED: reported,
            shadow.DELTA: shadow.delta(desired, reported),
        },
        "metadata": {shadow.DESIRED: desired_meta, shadow.REPORTED: reported_meta},
        "version": int(version),
        "timestamp": float(timestamp),
    }


def _record_document(record: Mapping[str, Any]) -> Document:
    """A document from a plain-SQL row (JSON columns come back as text from both drivers)."""
    desired, reported, desired_meta, reported_meta = (rawsql.loads(record[c]) for c in _SECTIONS)
    return _assemble(
        desired,
        reported,
        desired_meta,
        reported_meta,
        version=record["version"],
        timestamp=record["timestamp"],
    )


def _columns(doc: Document) -> dict[str, Any]:
    state = doc["state"]
    metadata = doc["metadata"]
    return {
        "desired": state[shadow.DESIRED],
        "reported": state[shadow.REPORTED],
        "desired_meta": metadata[shadow.DESIRED],
        "reported_meta": metadata[shadow.REPORTED],
        "version": int(doc["version"]),
        "timestamp": float(doc["timestamp"]),
    }


async def create(
    namespace: str, name: str, doc: Document, *, reported_at: float | None = None
) -> None:
    """Store the shadow of a new node (inside the node-creating transaction)."""
    await Shadow.create(namespace=namespace, name=name, report_time=reported_at, **_columns(doc))


async def load_document(namespace: str, name: str, *, for_update: bool = False) -> Document | None:
    """The shadow document of one node, or None when the node has none.

    `for_update` locks the row until the transaction ends (PostgreSQL), so a read-modify-write
    does not race other writers into a Conflict.
    """
    connection = rawsql.connection()
    if rawsql.is_postgres(connection):
        sql = _SELECT.format("$1", "$2", lock=" FOR UPDATE" if for_update else "")
    else:  # SQLite has no row locks: its writers are serialised anyway
        sql = _SELECT.format("?", "?", lock="")
    records = await connection.execute_query_dict(sql, [namespace, name])
    return _record_document(records[0]) if records else None


async def load_with_liveness(
    namespace: str, names: Iterable[str]
) -> dict[str, tuple[Document, Liveness]]:
    """The documents of several nodes, each with its last report and presence, for `ready`.

    Nodes without a shadow are absent. Read like `load_document`, a batch of names at a time.
    """
    wanted = sorted(set(names))
    connection = rawsql.connection()
    postgres = rawsql.is_postgres(connection)
    found: dict[str, tuple[Document, Liveness]] = {}
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start : start + _BATCH]
        if postgres:
            sql, values = _SELECT_MANY.format("$1", "= ANY($2::text[])"), [namespace, chunk]
        else:
            marks = ", ".join("?" * len(chunk))
            sql, values = _SELECT_MANY.format("?", f"IN ({marks})"), [namespace, *chunk]
        for record in await connection.execute_query_dict(sql, values):
            found[str(record["name"])] = (_record_document(record), _record_liveness(record))
    return found


def _record_liveness(record: Mapping[str, Any]) -> Liveness:
    reported, online, seen = record["report_time"], record["online"], record["presence_time"]
    return Liveness(
        report_time=None if reported is None else float(reported),
        online=None if online is None else bool(online),
        presence_time=None if seen is None else float(seen),
    )


async def save_document(
    namespace: str,
    name: str,
    doc: Document,
    *,
    expected_version: int,
    reported_at: float | None = None,
) -> None:
    """Write `doc` over the row only if the row is still at `expected_version`, else Conflict.

    `reported_at` (epoch seconds) records when the node last reported; leave it None for writes
    that do not come from the node (desired changes), which keeps the previous report time.
    """
    columns = _columns(doc)
    connection = rawsql.connection()
    marks = [f"${n}" for n in range(1, 11)] if rawsql.is_postgres(connection) else ["?"] * 10
    values: list[object] = [rawsql.dumps(columns[column]) for column in _SECTIONS]
    values += [columns["version"], columns["timestamp"], reported_at]
    values += [namespace, name, expected_version]
    updated, _ = await connection.execute_query(_UPDATE.format(*marks), values)
    if not updated:
        raise Conflict(
            f"the shadow of node {name} changed concurrently (expected version "
            f"{expected_version}); read it again and retry"
        )


async def delete(namespace: str, names: Iterable[str]) -> None:
    """Remove the shadows of these nodes."""
    wanted = sorted(set(names))
    if wanted:
        await Shadow.filter(namespace=namespace, name__in=wanted).delete()


async def delete_namespace(namespace: str) -> None:
    """Remove every shadow of a namespace."""
    await Shadow.filter(namespace=namespace).delete()


async def liveness(namespace: str) -> dict[str, Liveness]:
    """Report and presence times of every node of the namespace, for the `ready` filter."""
    rows = await Shadow.filter(namespace=namespace).values_list(
        "name", "report_time", "online", "presence_time"
    )
    return {
        str(name): Liveness(
            report_time=None if reported is None else float(reported),
            online=None if online is None else bool(online),
            presence_time=None if seen is None else float(seen),
        )
        for name, reported, online, seen in rows
    }


async def set_presence(namespace: str, name: str, *, online: bool, at: float) -> bool:
    """Record a node's MQTT presence (not a shadow write: the version does not move).

    Returns False when the node has no shadow (unknown or deleted node).
    """
    updated = await Shadow.filter(namespace=namespace, name=name).update(
        online=online, presence_time=at
    )
    return bool(updated)
