"""Bulk reads and writes of node shadows for recomputing desired states (one app → many nodes).

An app that matches 10,000 nodes rewrites 10,000 shadows in one transaction, and JSON is most of
that work: rows are locked (PostgreSQL) and read with plain SQL, decoded and encoded with orjson,
and written back with one prepared UPDATE executed per row by the driver (executemany). Tortoise's
model loading and bulk_update took 5.2 s for this on PostgreSQL, mostly building SQL text and
running the standard json module. On PostgreSQL the rows are both locked and written a batch of
2,000 per statement, the names and the new values passed as arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

BATCH = 500  # SQLite: bound parameters per statement stay well under its limit
PG_BATCH = 2000
_SELECT_SQLITE = (
    'SELECT "id", "name", "desired", "desired_meta", "version", "timestamp" '
    'FROM "baetyl_node_shadow" WHERE "namespace" = ? AND "name" IN ({marks}) ORDER BY "name"'
)
# The names as one array joined to the table, locked in name order as every fleet-wide writer
# locks (two of them cannot deadlock). Run with sequential scans off (`_index_lookups`).
_SELECT_PG = (
    'SELECT s."id", s."name", s."desired", s."desired_meta", s."version", s."timestamp" '
    'FROM unnest($2::text[]) AS n("name") JOIN "baetyl_node_shadow" AS s '
    'ON s."namespace" = $1 AND s."name" = n."name" ORDER BY s."name" FOR UPDATE OF s'
)
_UPDATE_SQLITE = (
    'UPDATE "baetyl_node_shadow" SET "desired" = ?, "desired_meta" = ?, "version" = ?, '
    '"timestamp" = ? WHERE "id" = ?'
)
# One statement for the whole batch: arrays unnested into rows, joined on the id. Far cheaper
# than a prepared UPDATE per row, which costs a round of the protocol each.
_UPDATE_PG = (
    'UPDATE "baetyl_node_shadow" AS s SET "desired" = v.desired::jsonb, '
    '"desired_meta" = v.desired_meta::jsonb, "version" = v.version, "timestamp" = v.ts '
    "FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::float8[]) "
    "AS v(id, desired, desired_meta, version, ts) "
    'WHERE s."id" = v.id'
)


@dataclass
class _Row:
    id: int
    desired: dict[str, Any]
    desired_meta: dict[str, Any]
    version: int
    timestamp: float


class ShadowRows:
    """The desired half of some nodes' shadows, editable as shadow documents, saved together."""

    def __init__(self, rows: dict[str, _Row]) -> None:
        self._rows = rows
        self._dirty: list[_Row] = []

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
        connection = _connection()
        if _is_postgres(connection):
            async with _index_lookups(connection):
                await self._save_postgres(connection)
        else:
            values = [
                [_dumps(row.desired), _dumps(row.desired_meta), row.version, row.timestamp, row.id]
                for row in self._dirty
            ]
            await connection.execute_many(_UPDATE_SQLITE, values)
        self._dirty.clear()

    async def _save_postgres(self, connection: BaseDBAsyncClient) -> None:
        for start in range(0, len(self._dirty), PG_BATCH):
            batch = self._dirty[start : start + PG_BATCH]
            columns = [
                [row.id for row in batch],
                [_dumps(row.desired) for row in batch],
                [_dumps(row.desired_meta) for row in batch],
                [row.version for row in batch],
                [row.timestamp for row in batch],
            ]
            await connection.execute_query(_UPDATE_PG, columns)


async def load_for_update(namespace: str, nodes: Iterable[str]) -> ShadowRows:
    """Lock and load the desired half of the shadows of `nodes` (missing ones are skipped)."""
    wanted = sorted(set(nodes))
    connection = _connection()
    rows: dict[str, _Row] = {}
    if _is_postgres(connection):
        async with _index_lookups(connection):
            for start in range(0, len(wanted), PG_BATCH):
                values = [namespace, wanted[start : start + PG_BATCH]]
                _add_rows(rows, await connection.execute_query_dict(_SELECT_PG, values))
    else:
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            sql = _SELECT_SQLITE.format(marks=", ".join("?" * len(chunk)))
            _add_rows(rows, await connection.execute_query_dict(sql, [namespace, *chunk]))
    return ShadowRows(rows)


def _add_rows(rows: dict[str, _Row], records: list[dict[str, Any]]) -> None:
    for record in records:
        rows[str(record["name"])] = _Row(
            id=int(record["id"]),
            desired=_loads(record["desired"]),
            desired_meta=_loads(record["desired_meta"]),
            version=int(record["version"]),
            timestamp=float(record["timestamp"]),
        )


@contextlib.asynccontextmanager
async def _index_lookups(connection: BaseDBAsyncClient) -> AsyncIterator[None]:
    """Sequential scans off for the statements inside, within the current transaction.

    The fleet-wide statements look each node up by name or id, and an index lookup is right
    whatever the table's size. The planner does not always see that: with statistics from before
    thousands of nodes were added (autovacuum analyzes at most once a minute) it judged the
    shadow table small and scanned all of it for each name, 8.4 s instead of 1.5 s for an app on
    10,000 nodes (docs/performance-notes.md). `SET LOCAL` ends with the transaction; the rest of
    the transaction gets the setting back at once. Not in a `finally`: after an error the
    transaction is aborted and rolled back, setting and all, and a statement now would fail too.
    """
    await connection.execute_script("SET LOCAL enable_seqscan = off")
    yield
    await connection.execute_script("SET LOCAL enable_seqscan TO DEFAULT")


def _connection() -> BaseDBAsyncClient:
    connection: BaseDBAsyncClient = connections.get("default")  # the transaction's, if in one
    return connection


def _is_postgres(connection: BaseDBAsyncClient) -> bool:
    return connection.capabilities.dialect == "postgres"


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _loads(value: object) -> dict[str, Any]:
    if isinstance(value, dict):  # a driver that decodes JSON itself
        return value
    loaded = orjson.loads(value if isinstance(value, str | bytes) else str(value))
    return loaded if isinstance(loaded, dict) else {}
