"""Virtualenvs with the agent wheel installed the way the install script installs it on a node.

`python -m venv`, then `pip install --quiet --disable-pip-version-check WHEEL[EXTRAS]` with the
venv's own pip, as `cloud/installer/templates/baetyl-install.sh.tmpl` does (a native node asks
for no extra). Dependencies come from pip's cache (~/.cache/baetyl-py/pip unless PIP_CACHE_DIR
says otherwise) or the configured index. Used by the base-install tests and by
`bench/node_venv.py`, which measures what such a venv weighs.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.harness.common import HarnessError
from tests.harness.wheel import CACHE

INSTALL_TIMEOUT = 600.0
MB = 1024 * 1024
_NOT_ON_A_NODE = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def node_env() -> dict[str, str]:
    """This environment as a node's would be: no source tree on the path, no active venv."""
    env = {key: value for key, value in os.environ.items() if key not in _NOT_ON_A_NODE}
    env.setdefault("PIP_CACHE_DIR", str(CACHE / "pip"))
    return env


def create_node_venv(target: Path, wheel: Path, extras: Sequence[str] = ()) -> Path:
    """A new venv at `target` with `wheel` (and `extras`) installed; its `bin/` directory."""
    env = node_env()
    requirement = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    python = target / "bin" / "python"
    for argv in (
        [sys.executable, "-m", "venv", str(target)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         requirement],
    ):  # fmt: skip
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
        if result.returncode != 0:
            raise HarnessError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return python.parent


def site_packages(venv: Path) -> Path:
    """The venv's site-packages directory."""
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (`Tortoise_ORM` == `tortoise-orm`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(venv: Path) -> dict[str, Path]:
    """Every distribution installed in the venv: normalized name → its .dist-info directory."""
    found = {}
    for info in site_packages(venv).glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[normalized(name)] = info
    return found


def disk_bytes(paths: Sequence[Path]) -> int:
    """Disk space of the files under `paths`, counted as `du` does (blocks, links not followed)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for top in paths:
        for path in (top, *top.rglob("*")) if top.is_dir() else (top,):
            info = path.lstat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def distribution_bytes(venv: Path, info: Path) -> int:
    """Disk space of the files one distribution installed (its RECORD, compiled .pyc included)."""
    base = site_packages(venv)
    with (info / "RECORD").open(encoding="utf-8", newline="") as record:
        rows = [row[0] for row in csv.reader(record) if row]
    return disk_bytes([base / row for row in rows if (base / row).is_file()])
