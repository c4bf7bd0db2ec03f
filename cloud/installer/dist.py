"""The agent wheels the cloud serves to installing nodes (`--dist-dir`, default DATA_DIR/dist).

Blocking file system calls: async callers go through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
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


def wheel_version(name: str) -> str | None:
    """The version in a wheel file name (`baetyl_py-0.2.0-py3-none-any.whl` → `0.2.0`)."""
    if not _WHEEL_NAME.match(name):
        return None
    parts = name.removesuffix(".whl").split("-")
    return parts[1] if len(parts) >= 5 else None  # name, version, python, abi, platform


def wheels(directory: Path) -> dict[str, Path]:
    """Every agent version the directory serves → its wheel (the newest file of a version)."""
    found: dict[str, Path] = {}
    try:
        paths = sorted(
            (path for path in directory.glob(WHEEL_GLOB) if path.is_file()),
            key=lambda path: (path.stat().st_mtime, path.name),
        )
    except OSError:
        return {}
    for path in paths:
        version = wheel_version(path.name)
        if version is not None:
            found[version] = path
    return found


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """An order of versions good enough for "latest": the release numbers, then a final release
    above its pre-releases (`1.2.0` > `1.2.0rc1` > `1.1.9`), then the text."""
    match = re.match(r"^v?(\d+(?:\.\d+)*)(.*)$", version)
    if match is None:
        return ((), 0, version)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    while numbers and numbers[-1] == 0:
        numbers = numbers[:-1]
    rest = match.group(2)
    return (numbers, 0 if rest and not rest.startswith((".post", "+")) else 1, rest)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
