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

from tortoise.backends.base.client import BaseDBAsyncClient

from agent.contracts import shadow
from cloud.store import rawsql

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


@dataclass(frozen=True, slots=True)
class Written:
    """A node's shadow after a desired write: what the cloud tells the node (decision #124).

    `desired` is the whole new desired section, pushed with the version so that the node does
    not read its document back.
    """

    version: int
    timestamp: float
    desired: dict[str, Any]


DesiredChanges = dict[str, Written]
"""New shadow versions after desired writes, by nid."""


@dataclass
class _Row:
    id: int
    desired: dict[str, Any]
    desired_meta: dict[str, Any]
    version: int
    timestamp: float


class ShadowRows:
    """The desired half of some nodes' shadows, locked, changed in memory, saved together.

    The reported section (up to 128 KiB per node) is neither read nor written: a desired write
    needs only desired, its metadata, the version and the timestamp, and the delta is computed
    whenever a document is read.
    """

    def __init__(self, rows: dict[str, _Row]) -> None:
        self._rows = rows
        self._dirty: dict[str, _Row] = {}

    def names(self) -> list[str]:
        """Nodes whose shadow was loaded."""
        return sorted(self._rows)

    def desired(self, node: str) -> dict[str, Any]:
        """`node`'s desired section as loaded or last updated here."""
        return self._rows[node].desired

    def update_desired(self, node: str, patch: dict[str, Any], *, now: float) -> None:
        """Merge `patch` into `node`'s desired section (shadow rules), staged for `save`."""
        row = self._rows[node]
        row.desired, row.desired_meta = shadow.updated_section(
            shadow.DESIRED, row.desired, row.desired_meta, patch, now=now
        )
        row.version += 1
        row.timestamp = now
        self._dirty[node] = row

    async def save(self) -> dict[str, Written]:
        """Write every staged shadow; return each written node's new version, by node name."""
        if not self._dirty:
            return {}
        dirty = list(self._dirty.values())
        connection = rawsql.connection()
        if rawsql.is_postgres(connection):
            async with _index_lookups(connection):
                await _save_postgres(connection, dirty)
        else:
            values = [
                [
                    rawsql.dumps(row.desired),
                    rawsql.dumps(row.desired_meta),
                    row.version,
                    row.timestamp,
                    row.id,
                ]
                for row in dirty
            ]
            await connection.execute_many(_UPDATE_SQLITE, values)
        written = {
            node: Written(row.version, row.timestamp, row.desired)
            for node, row in self._dirty.items()
        }
        self._dirty.clear()
        return written


async def _save_postgres(connection: BaseDBAsyncClient, dirty: list[_Row]) -> None:
    for start in range(0, len(dirty), PG_BATCH):
        batch = dirty[start : start + PG_BATCH]
        columns = [
            [row.id for row in batch],
            [rawsql.dumps(row.desired) for row in batch],
            [rawsql.dumps(row.desired_meta) for row in batch],
            [row.version for row in batch],
            [row.timestamp for row in batch],
        ]
        await connection.execute_query(_UPDATE_PG, columns)


async def load_for_update(namespace: str, nodes: Iterable[str]) -> ShadowRows:
    """Lock and load the desired half of the shadows of `nodes` (missing ones are skipped)."""
    wanted = sorted(set(nodes))
    connection = rawsql.connection()
    rows: dict[str, _Row] = {}
    if rawsql.is_postgres(connection):
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
            desired=rawsql.loads(record["desired"]),
            desired_meta=rawsql.loads(record["desired_meta"]),
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
