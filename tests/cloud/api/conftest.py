"""Fixtures of the REST API tests: a real cloud server per test, on SQLite or PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness.cloud import CloudServer, backend, start_cloud
from tests.harness.postgres import PostgresCluster


@pytest.fixture
def cloud_db_url(tmp_path: Path, postgres: PostgresCluster) -> Iterator[str | None]:
    """None (SQLite in the data dir) or a fresh PostgreSQL database, per BAETYL_TEST_DB."""
    if backend() == "sqlite":
        yield None
        return
    name = f"cloud_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    try:
        yield dsn
    finally:
        postgres.drop_database(name)


@pytest.fixture
async def cloud(tmp_path: Path, cloud_db_url: str | None) -> AsyncIterator[CloudServer]:
    """A running cloud with its admin token; stopped (store closed) after the test."""
    runner, server = await start_cloud(tmp_path / "cloud", cloud_db_url)
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()
