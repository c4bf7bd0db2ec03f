"""The `postgres` fixture gives a real, private PostgreSQL cluster that asyncpg can use."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.harness.postgres import PostgresCluster


async def test_database_is_created_written_read_and_dropped(postgres: PostgresCluster) -> None:
    name = f"harness_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    assert dsn == f"postgres://postgres@127.0.0.1:{postgres.port}/{name}"
    try:
        connection = await asyncpg.connect(dsn)
        try:
            assert await connection.fetchval("SELECT current_database()") == name
            await connection.execute("CREATE TABLE node (nid text PRIMARY KEY, shadow jsonb)")
            await connection.execute(
                "INSERT INTO node VALUES ($1, $2)", "default.node-a", '{"version": 1}'
            )
            row = await connection.fetchrow("SELECT nid, shadow->>'version' AS v FROM node")
            assert row is not None
            assert (row["nid"], row["v"]) == ("default.node-a", "1")
        finally:
            await connection.close()
    finally:
        postgres.drop_database(name)

    admin = await asyncpg.connect(postgres.dsn())
    try:
        count = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        assert count == 0
        assert await admin.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await admin.close()


def test_dsn_points_at_the_loopback_cluster(postgres: PostgresCluster) -> None:
    assert postgres.host == "127.0.0.1"
    assert postgres.dsn() == f"postgres://postgres@127.0.0.1:{postgres.port}/postgres"


@pytest.mark.parametrize("name", ["Upper", "has-dash", 'x"; DROP DATABASE postgres; --', "", "9a"])
def test_unsafe_database_names_are_refused(postgres: PostgresCluster, name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres.create_database(name)
