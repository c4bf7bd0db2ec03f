"""Bulk reads and writes of node shadows for recomputing desired states (one app → many nodes).

An app that matches 10,000 nodes rewrites 10,000 shadows in one transaction: rows are locked
(PostgreSQL) and read in one query, and written back with `bulk_update` in batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cloud.store.models import Shadow

BATCH = 500


class ShadowRows:
    """Shadow rows of some nodes, editable as shadow documents, saved together."""

    def __init__(self, rows: list[Shadow]) -> None:
        self._rows = {row.name: row for row in rows}
        self._dirty: list[Shadow] = []

    def names(self) -> list[str]:
        """Nodes whose shadow was loaded."""
        return sorted(self._rows)

    def document(self, node: str) -> dict[str, Any]:
        """The shadow document of `node` (delta left empty: apply_update recomputes it)."""
        row = self._rows[node]
        return {
            "state": {"desired": row.desired, "reported": row.reported, "delta": {}},
            "metadata": {"desired": row.desired_meta, "reported": row.reported_meta},
            "version": row.version,
            "timestamp": row.timestamp,
        }

    def replace_desired(self, node: str, doc: dict[str, Any]) -> None:
        """Stage a new desired section (from apply_update) for saving."""
        row = self._rows[node]
        row.desired = doc["state"]["desired"]
        row.desired_meta = doc["metadata"]["desired"]
        row.version = doc["version"]
        row.timestamp = doc["timestamp"]
        self._dirty.append(row)

    async def save(self) -> None:
        """Write every staged shadow."""
        if self._dirty:
            await Shadow.bulk_update(
                self._dirty,
                fields=["desired", "desired_meta", "version", "timestamp"],
                batch_size=BATCH,
            )
            self._dirty.clear()


async def load_for_update(namespace: str, nodes: Iterable[str]) -> ShadowRows:
    """Lock and load the shadows of `nodes` (missing ones are skipped)."""
    wanted = sorted(set(nodes))
    rows: list[Shadow] = []
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        rows.extend(
            await Shadow.filter(namespace=namespace, name__in=chunk)
            .select_for_update()
            .order_by("name")
        )
    return ShadowRows(rows)
