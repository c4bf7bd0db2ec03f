"""Databases already migrated, for test clouds to start from.

Every test cloud used to run all the store's migrations on an empty database: about 0.2 s on
SQLite and 0.3 s on PostgreSQL, for each of some 1,400 cloud starts of a `make test`. Each test
process now migrates one template of each kind, with the migrations of the tree under test, and
starts every cloud from a copy (the cloud still runs `migrate`, which finds nothing to do). The
migrations themselves are tested from empty databases in tests/cloud/store/test_migrations.py.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.harness.common import HarnessError
from tests.harness.postgres import PostgresCluster

_MIGRATE = (
    "import asyncio, sys\n"
    "from cloud.store.db import close_store, open_store\n"
    "async def main():\n"
    "    await open_store(sys.argv[1])\n"
    "    await close_store()\n"
    "asyncio.run(main())\n"
)
TEMPLATE_DATABASE = "baetyl_migrated"
_postgres_templates: set[int] = set()


def _migrate(url: str) -> None:
    # In a process of its own: Tortoise's state is global, and the test's cloud opens its own.
    result = subprocess.run(
        [sys.executable, "-c", _MIGRATE, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"migrating a template database failed:\n{result.stderr[-3000:]}")


@functools.cache
def _sqlite_template() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="baetyl-migrated-"))
    atexit.register(shutil.rmtree, scratch, True)
    _migrate(f"sqlite://{scratch / 'cloud.db'}")
    return scratch / "cloud.db"


def sqlite_copy(data_dir: Path) -> None:
    """Put a migrated `cloud.db` into `data_dir` (made 0700 if missing) with the cloud's 0600."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = data_dir / "cloud.db"
    shutil.copyfile(_sqlite_template(), target)
    target.chmod(0o600)


def postgres_database(cluster: PostgresCluster, name: str) -> str:
    """Create database `name` as a copy of a migrated template; return its DSN."""
    if id(cluster) not in _postgres_templates:
        _migrate(cluster.create_database(TEMPLATE_DATABASE))
        _postgres_templates.add(id(cluster))
    return cluster.create_database(name, template=TEMPLATE_DATABASE)
