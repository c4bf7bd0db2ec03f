"""Shadow rows ↔ shadow documents (DESIGN §5), with optimistic concurrency on every write.

A row keeps the writable sections and their metadata; the delta is never stored, it is
recomputed from desired and reported on load, so it can never disagree with them. Writes name the
version they were computed from and update only if the row still holds it (`WHERE version = ?`),
so concurrent writers — several cloud replicas — never lose an update: the loser gets Conflict
and recomputes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.contracts import shadow
from cloud.errors import Conflict
from cloud.store.models import Shadow

Document = dict[str, Any]


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


async def load_with_report_times(
    namespace: str, names: Iterable[str]
) -> dict[str, tuple[Document, float | None]]:
    """Like load_documents, plus when each node last reported (None: never), for `ready`."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = await Shadow.filter(namespace=namespace, name__in=wanted)
    return {row.name: (_document(row), row.report_time) for row in rows}


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


async def report_times(namespace: str) -> dict[str, float | None]:
    """When each node of the namespace last reported (None: never), for the `ready` filter."""
    rows = await Shadow.filter(namespace=namespace).values_list("name", "report_time")
    return {str(name): (None if at is None else float(at)) for name, at in rows}
