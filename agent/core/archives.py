"""Unpacking downloaded archives (zip, tar, tar.gz) without letting them reach outside.

An object item with `unpack` is an archive from the cloud or any URL: it is treated as hostile.
Every member is checked before anything is written — a name that is absolute, holds `..` or a
backslash, a link, a device or a FIFO refuses the whole archive — and sizes are counted as bytes
are written, not as the archive declares them, so a zip bomb stops at the limit. Files get mode
0644, or 0755 when the archive marks them executable; nothing keeps an owner or a set-id bit.
Blocking: run in a thread.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Final

_CHUNK: Final = 256 * 1024


class ArchiveError(ValueError):
    """An archive refused; the message names the member and the rule it broke."""


@dataclass(frozen=True)
class UnpackLimits:
    """How much an archive may unpack to."""

    max_bytes: int = 2 * 1024**3
    max_members: int = 20_000


def unpack(archive: Path, kind: str, target: Path, limits: UnpackLimits) -> None:
    """Unpack `archive` (`zip`, `tar` or `tgz`) into the new directory `target`.

    `target` must not exist; on any failure it is removed again, so it either holds the whole
    archive or does not exist.
    """
    if kind not in ("zip", "tar", "tgz"):
        raise ArchiveError(f"unknown archive kind {kind!r}")
    target.mkdir(mode=0o755)
    try:
        if kind == "zip":
            _unzip(archive, target, limits)
        else:
            _untar(archive, "r:gz" if kind == "tgz" else "r:", target, limits)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def member_path(name: str) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive's root itself.

    ArchiveError for an absolute name, a `..` component, a backslash or a NUL.
    """
    if "\\" in name or "\x00" in name:
        raise ArchiveError(f"member {name!r}: backslashes and NULs are not allowed in names")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ArchiveError(f"member {name!r}: an absolute path would leave the directory")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise ArchiveError(f"member {name!r}: '..' would leave the directory")
    return PurePosixPath(*parts) if parts else None


class _Budget:
    def __init__(self, limits: UnpackLimits) -> None:
        self.limits = limits
        self.bytes = 0
        self.members = 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveError(f"more than {self.limits.max_members} members (at {name!r})")

    def take(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise ArchiveError(
                f"unpacks to more than {self.limits.max_bytes} bytes (at member {name!r})"
            )


def _unzip(archive: Path, target: Path, limits: UnpackLimits) -> None:
    budget = _Budget(limits)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for info in members:  # every name is checked before a byte is written
                budget.member(info.filename)
                member_path(info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16)
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    raise ArchiveError(f"member {info.filename!r}: only files and directories")
            for info in members:
                path = member_path(info.filename)
                if path is None:
                    continue
                if info.is_dir():
                    _directory(target, path)
                    continue
                executable = bool((info.external_attr >> 16) & 0o111)
                with zipped.open(info) as source:
                    _write(target, path, source, budget, executable=executable)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}") from exc


def _untar(archive: Path, mode: str, target: Path, limits: UnpackLimits) -> None:
    budget = _Budget(limits)
    try:
        with tarfile.open(archive, mode) as tarred:  # type: ignore[call-overload]
            members = list(_tar_members(tarred, budget))
            for info in members:
                path = member_path(info.name)
                if path is None:
                    continue
                if info.isdir():
                    _directory(target, path)
                    continue
                source = tarred.extractfile(info)
                if source is None:  # pragma: no cover - regular members always have data
                    raise ArchiveError(f"member {info.name!r}: no data")
                with source:
                    _write(target, path, source, budget, executable=bool(info.mode & 0o111))
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"not a readable tar archive: {exc}") from exc


def _tar_members(tarred: tarfile.TarFile, budget: _Budget) -> Iterator[tarfile.TarInfo]:
    checked: list[tarfile.TarInfo] = []
    for info in tarred:
        budget.member(info.name)
        member_path(info.name)
        if not (info.isreg() or info.isdir()):
            raise ArchiveError(f"member {info.name!r}: only files and directories (no links)")
        checked.append(info)
    return iter(checked)


def _directory(target: Path, path: PurePosixPath) -> Path:
    current = target
    for part in path.parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise ArchiveError(f"member {path}: {part!r} is already a file")
        current.mkdir(mode=0o755, exist_ok=True)
    return current


def _write(
    target: Path, path: PurePosixPath, source: IO[bytes], budget: _Budget, *, executable: bool
) -> None:
    name = str(path)
    parent = _directory(target, path.parent) if path.parent.parts else target
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(parent / path.name, flags, 0o755 if executable else 0o644)
    except FileExistsError as exc:
        raise ArchiveError(f"member {name!r}: the archive holds it twice") from exc
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o755 if executable else 0o644)
        while chunk := source.read(_CHUNK):
            budget.take(len(chunk), name)
            out.write(chunk)
