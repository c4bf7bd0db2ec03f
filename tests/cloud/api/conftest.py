"""Fixtures of the REST API tests: a real cloud server per test, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.cloud import CloudServer, start_cloud


@pytest.fixture
async def cloud(tmp_path: Path, cloud_db_url: str | None) -> AsyncIterator[CloudServer]:
    """A running cloud with its admin token; stopped (store closed) after the test."""
    runner, server = await start_cloud(tmp_path / "cloud", cloud_db_url)
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()
