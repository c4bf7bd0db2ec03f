"""Crash-safe file writes: the agent's store and bookkeeping, keys, certificates and configs.

A write goes to a temporary file in the same directory, is flushed to disk, then renamed over the
target, and the directory is synced: killing the process (or losing power) at any instant leaves
either the old content or the new one, never a torn file, and the rename itself survives. The
temporary file is private (0600) from its first byte, so a key is never readable by others, not
even for an instant. These are blocking calls; async code runs them through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
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


class TooLarge(ValueError):
    """More bytes than the writer was allowed to take."""


@dataclass(frozen=True)
class BlobDigest:
    """What was written: its size and its MD5 and SHA-256 (lower-case hex)."""

    size: int
    md5: str
    sha256: str


class BlobWriter:
    """Stream bytes into `target` crash-safely, hashing them on the way (downloads, uploads).

    The bytes go to a private temporary file beside `target`; `commit` flushes it to disk and
    renames it into place, `discard` (or leaving the `with` block by an exception) deletes it,
    so a reader never sees a partial file. More than `max_bytes` raises TooLarge at the write
    that crosses the limit. Blocking: async code writes through `asyncio.to_thread`.
    """

    def __init__(self, target: Path, *, max_bytes: int, mode: int = 0o600) -> None:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
        )
        self._handle = os.fdopen(fd, "wb")
        os.fchmod(fd, mode)
        self._temp = Path(temp)
        self._target = target
        self._max = max_bytes
        self._size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        """Append `chunk`; TooLarge when the total would pass the limit."""
        self._size += len(chunk)
        if self._size > self._max:
            raise TooLarge(f"more than {self._max} bytes")
        self._md5.update(chunk)
        self._sha256.update(chunk)
        self._handle.write(chunk)

    def digest(self) -> BlobDigest:
        """The size and digests of what was written so far."""
        return BlobDigest(self._size, self._md5.hexdigest(), self._sha256.hexdigest())

    def commit(self, target: Path | None = None) -> BlobDigest:
        """Put the bytes in place (atomically) and return their digest.

        `target` (in the same directory) overrides the one given at the start: a
        content-addressed file is named by a digest known only now.
        """
        final = self._target if target is None else target
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._temp.replace(final)
        sync_directory(final.parent)
        return self.digest()

    def discard(self) -> None:
        """Delete the temporary file; `target` is left as it was."""
        self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None or not self._handle.closed:
            self.discard()
