"""Shadow rows ↔ shadow documents (DESIGN §5), with optimistic concurrency on every write.

A row keeps the writable sections and their metadata; the delta is never stored, it is
recomputed from desired and reported on load, so it can never disagree with them. Writes name the
version they were computed from and update only if the row still holds it (`WHERE version = ?`),
so concurrent writers — several cloud replicas — never lose an update: the loser gets Conflict
and recomputes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.contracts import shadow
from cloud.errors import Conflict
from cloud.store.models import Shadow

Document = dict[str, Any]


@dataclass(frozen=True)
class Liveness:
    """What the cloud knows of a node's connection: its last report and its MQTT presence.

    `online` is None until a presence message arrived; `presence_time` is when it arrived.
    """

    report_time: float | None = None
    online: bool | None = None
    presence_time: float | None = None


def _liveness(row: Shadow) -> Liveness:
    return Liveness(
        report_time=None if row.report_time is None else float(row.report_time),
        online=row.online,
        presence_time=None if row.presence_time is None else float(row.presence_time),
    )


def _document(row: Shadow) -> Document:
    desired = row.desired or {}
    reported = row.reported or {}
    return {
        "state": {
            shadow.DESIRED: desired,
            shadow.REPORTED: reported,
            shadow.DELTA: shadow.delta(desired, reported),
        },
        "metadata": {
            shadow.DESIRED: row.desired_meta or {},
            shadow.REPORTED: row.reported_meta or {},
        },
        "version": int(row.version),
        "timestamp": float(row.timestamp),
    }


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
    query = Shadow.filter(namespace=namespace, name=name)
    if for_update:
        query = query.select_for_update()
    row = await query.first()
    return None if row is None else _document(row)


async def load_documents(namespace: str, names: Iterable[str]) -> dict[str, Document]:
    """The shadow documents of several nodes in one query; nodes without one are absent."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = await Shadow.filter(namespace=namespace, name__in=wanted)
    return {row.name: _document(row) for row in rows}


async def load_with_liveness(
    namespace: str, names: Iterable[str]
) -> dict[str, tuple[Document, Liveness]]:
    """Like load_documents, plus each node's last report and presence, for `ready`."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = await Shadow.filter(namespace=namespace, name__in=wanted)
    return {row.name: (_document(row), _liveness(row)) for row in rows}


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
    if reported_at is not None:
        columns["report_time"] = reported_at
    updated = await Shadow.filter(namespace=namespace, name=name, version=expected_version).update(
        **columns
    )
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
