"""Crash-safe file writes: the agent's store and bookkeeping, keys, certificates and configs.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over the
target, and the directory is synced: killing the process (or losing power) at any instant leaves
either the old content or the new one, never a torn file, and the rename itself survives. The
temporary file is private (0600) from its first byte, so a key is never readable by others, not
even for an instant. These are blocking calls; async code runs them through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

TEMPORARY_SUFFIX: Final = ".tmp"


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Replace `path` with `data` atomically; the file gets `mode` (owner-only by default).

    `owner` (uid, gid) hands the file to another account before a byte is written (the managed
    broker reads its files after dropping root); None keeps the writer's. Missing parent
    directories are created owner-only.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A unique name: two writers of one file (a restart and a reload) must not share a temporary.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()
        raise
    sync_directory(path.parent)


def atomic_write_json(path: Path, value: Any, *, mode: int = 0o600) -> None:
    """`atomic_write` of compact UTF-8 JSON."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    atomic_write(path, text.encode(), mode=mode)


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when the file does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def sync_directory(directory: Path) -> None:
    """fsync a directory so that a rename or unlink in it survives a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by writes that a crash interrupted."""
    for stale in directory.glob(f".*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
