"""The agent wheels the cloud serves to installing nodes (`--dist-dir`, default DATA_DIR/dist).

Blocking file system calls: async callers go through `asyncio.to_thread`.
"""

from __future__ import annotations

import re
from pathlib import Path

WHEEL_GLOB = "baetyl_py-*.whl"
_WHEEL_NAME = re.compile(r"^baetyl_py-[A-Za-z0-9_.+!-]+\.whl$")
BUILD_HINT = (
    "build the agent wheel with `make wheel` in the Baetyl-Py source tree "
    "(or `pip wheel --no-deps -w dist .`) and copy dist/baetyl_py-*.whl there"
)


def newest_wheel(directory: Path) -> Path | None:
    """The most recently modified `baetyl_py-*.whl` in `directory`, or None."""
    try:
        found = [path for path in directory.glob(WHEEL_GLOB) if path.is_file()]
    except OSError:
        return None
    if not found:
        return None
    return max(found, key=lambda path: (path.stat().st_mtime, path.name))


def served_file(directory: Path, name: str) -> Path | None:
    """`directory/name` if `name` is a wheel file name and such a regular file is there.

    Only plain wheel names are accepted, so no path can leave the directory.
    """
    if not _WHEEL_NAME.match(name):
        return None
    path = directory / name
    return path if path.is_file() else None
