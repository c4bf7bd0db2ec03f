"""Bulk reads and writes of node shadows for recomputing desired states (one app → many nodes).

An app that matches 10,000 nodes rewrites 10,000 shadows in one transaction: rows are locked
(PostgreSQL) and read in batched queries, and written back with one prepared UPDATE executed for
every row (the driver's executemany); Tortoise's bulk_update spends seconds building SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tortoise import connections

from cloud.store.models import Shadow

BATCH = 500
_COLUMNS = ("id", "name", "desired", "desired_meta", "version", "timestamp")
_UPDATE_SQLITE = (
    'UPDATE "baetyl_node_shadow" SET "desired" = ?, "desired_meta" = ?, "version" = ?, '
    '"timestamp" = ? WHERE "id" = ?'
)
_UPDATE_PG = (
    'UPDATE "baetyl_node_shadow" SET "desired" = $1, "desired_meta" = $2, "version" = $3, '
    '"timestamp" = $4 WHERE "id" = $5'
)


class ShadowRows:
    """Shadow rows of some nodes, editable as shadow documents, saved together."""

    def __init__(self, rows: list[Shadow]) -> None:
        self._rows = {row.name: row for row in rows}
        self._dirty: list[Shadow] = []

    def names(self) -> list[str]:
        """Nodes whose shadow was loaded."""
        return sorted(self._rows)

    def document(self, node: str) -> dict[str, Any]:
        """The desired half of `node`'s shadow document.

        The reported section (up to 128 KiB per node) is neither read nor written here: only
        desired, its metadata, the version and the timestamp are saved, and the delta is computed
        whenever a document is read, so the empty reported stand-in never reaches storage.
        """
        row = self._rows[node]
        return {
            "state": {"desired": row.desired, "reported": {}, "delta": {}},
            "metadata": {"desired": row.desired_meta, "reported": {}},
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
        if not self._dirty:
            return
        connection = connections.get("default")  # the transaction's, inside `transaction()`
        sql = _UPDATE_PG if connection.capabilities.dialect == "postgres" else _UPDATE_SQLITE
        values = [
            [_json(row.desired), _json(row.desired_meta), row.version, row.timestamp, row.id]
            for row in self._dirty
        ]
        await connection.execute_many(sql, values)
        self._dirty.clear()


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def load_for_update(namespace: str, nodes: Iterable[str]) -> ShadowRows:
    """Lock and load the shadows of `nodes` (missing ones are skipped)."""
    wanted = sorted(set(nodes))
    rows: list[Shadow] = []
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        rows.extend(
            await Shadow.filter(namespace=namespace, name__in=chunk)
            .select_for_update()
            .only(*_COLUMNS)
            .order_by("name")
        )
    return ShadowRows(rows)
