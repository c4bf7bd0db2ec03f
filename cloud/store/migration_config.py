"""Tortoise configuration for the `tortoise` CLI, used by `make migrations` to write new migrations.

`tortoise -c cloud.store.migration_config.TORTOISE_ORM makemigrations` compares the models with the
migrations on disk; the database named here is only a scratch file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cloud.store.db import sqlite_url, tortoise_config

TORTOISE_ORM = tortoise_config(
    os.environ.get("BAETYL_MIGRATION_DB")
    or sqlite_url(Path(tempfile.gettempdir()) / "baetyl-makemigrations.db")
)
