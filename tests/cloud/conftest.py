"""Fixtures shared by the cloud tests: the database a test cloud runs on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import migrated
from tests.harness.cloud import backend
from tests.harness.postgres import PostgresCluster


@pytest.fixture
def cloud_db_url(tmp_path: Path, postgres: PostgresCluster) -> Iterator[str | None]:
    """None (SQLite in the data dir) or a fresh, migrated PostgreSQL database, per
    BAETYL_TEST_DB."""
    if backend() == "sqlite":
        yield None
        return
    name = f"cloud_{uuid.uuid4().hex[:12]}"
    dsn = migrated.postgres_database(postgres, name)
    try:
        yield dsn
    finally:
        postgres.drop_database(name)
