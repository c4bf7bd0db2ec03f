"""Packing a function's code directory into a zip for `baetylctl config push-code`.

The zip is reproducible: members in sorted order, one fixed timestamp, modes reduced to 0644 or
0755. Pushing an unchanged directory therefore uploads the same bytes, the configuration keeps
its version, and nothing rolls out. Caches and version-control directories are left out; a
symlink or special file is refused rather than followed, since the node unpacks files only.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Final

from cloud.ctlkit.errors import UsageError

SKIPPED_DIRS: Final = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".venv"})
SKIPPED_SUFFIXES: Final = (".pyc", ".pyo")
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)


def zip_directory(directory: Path) -> bytes:
    """The code of `directory` as zip bytes (UsageError for what cannot be packed)."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(directory):
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=_EPOCH)
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            count += 1
    if count == 0:
        raise UsageError(f"{directory}: holds no file to push")
    return buffer.getvalue()


def _files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                raise UsageError(f"{path}: a symbolic link; push-code packs regular files only")
        for name in sorted(files):
            path = Path(root) / name
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            if not path.is_file():
                raise UsageError(f"{path}: not a regular file; push-code packs regular files only")
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())
