"""The schema comes from the shipped migrations, and they are complete for the models."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector

from cloud.store import db, models
from cloud.store.db import sqlite_url, tortoise_config
from tests.harness.postgres import PostgresCluster


async def test_the_models_need_no_migration_beyond_the_shipped_ones(tmp_path: Path) -> None:
    config = tortoise_config(sqlite_url(tmp_path / "scratch.db"))
    apps = config["apps"]
    async with tortoise_cli_context(config) as context:
        writers = await MigrationAutodetector(context.apps, apps).changes()
    names = [writer.name for writer in writers]
    assert not writers, (
        f"models changed without a migration: run `make migrations NAME=…` ({names})"
    )


async def test_opening_a_fresh_store_creates_every_table_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "cloud.db")
    await db.open_store(url)
    try:
        await models.Namespace.create(name="kept")
        tables = {
            row["name"]
            for row in await Tortoise.get_connection("default").execute_query_dict(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
    finally:
        await db.close_store()
    expected = {
        model._meta.db_table
        for model in vars(models).values()
        if hasattr(model, "_meta") and model.__module__ == models.__name__
    }
    assert expected <= tables
    await db.open_store(url)
    try:
        assert await models.Namespace.filter(name="kept").exists()
    finally:
        await db.close_store()


async def test_a_bad_database_url_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(db.StoreError, match="unsupported database URL"):
        await db.open_store("mysql://localhost/x")
    with pytest.raises(db.StoreError, match="does not exist"):
        await db.open_store(sqlite_url(tmp_path / "missing-dir" / "deeper" / "cloud.db"))


_OPEN_AND_CLOSE = """
import asyncio, sys
from cloud.store.db import close_store, open_store

async def main() -> None:
    await open_store(sys.argv[1])
    await close_store()

asyncio.run(main())
"""


@pytest.mark.postgres
async def test_replicas_starting_together_on_an_empty_database_both_open_it(
    postgres: PostgresCluster,
) -> None:
    # Without the migration lock one of them fails on a duplicate table or type.
    for attempt in range(3):
        name = f"together_{uuid.uuid4().hex[:8]}_{attempt}"
        url = postgres.create_database(name)
        try:
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", _OPEN_AND_CLOSE, url, stderr=asyncio.subprocess.PIPE
                )
                for _ in range(3)
            ]
            results = [await process.communicate() for process in processes]
            codes = [process.returncode for process in processes]
            assert codes == [0, 0, 0], [err.decode()[-500:] for _, err in results]
        finally:
            postgres.drop_database(name)
