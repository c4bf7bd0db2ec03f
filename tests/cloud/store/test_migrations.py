"""The schema comes from the shipped migrations, and they are complete for the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector

from cloud.store import db, models
from cloud.store.db import sqlite_url, tortoise_config


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
