"""The agent wheel the cloud serves to installing nodes, built once from the working tree.

Built from a copy of the sources (so a stale `build/` in the tree cannot leak into it) and cached
under ~/.cache/baetyl-py/wheels/<hash of the sources>/: an unchanged tree reuses the wheel of an
earlier session, any edit builds a new one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.harness.common import HarnessError

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BAETYL_TEST_CACHE", Path.home() / ".cache/baetyl-py"))
_PACKAGES = ("agent", "cloud", "function_proxy")
_FILES = ("setup.cfg", "pyproject.toml", "README.md")
_SUFFIXES = (".py", ".tmpl", ".typed")
BUILD_TIMEOUT = 300.0


def source_files() -> list[Path]:
    """Every file that goes into the wheel, relative to the repository root."""
    found = [Path(name) for name in _FILES]
    for package in _PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and path.suffix in _SUFFIXES and "__pycache__" not in path.parts:
                found.append(path.relative_to(ROOT))
    return found


def source_hash(files: list[Path]) -> str:
    """A digest of the names and contents of `files`."""
    digest = hashlib.sha256()
    for relative in files:
        digest.update(str(relative).encode() + b"\0")
        digest.update((ROOT / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


Replacement = tuple[str, str, str]
"""(file relative to the repository, text, its replacement) for a wheel variant."""


def agent_wheel(version: str | None = None, replacements: tuple[Replacement, ...] = ()) -> Path:
    """The path of a wheel of the current sources, building it if the cache has none.

    `version` builds it as another version (setup.cfg's `version`), `replacements` with source
    changes: the agent upgrade tests make a newer and a broken version of the working tree.
    """
    files = source_files()
    key = source_hash(files)
    if version is not None or replacements:
        variant = hashlib.sha256(repr((version, replacements)).encode()).hexdigest()[:8]
        key = f"{key}-{variant}"
    out = CACHE / "wheels" / key
    found = sorted(out.glob("baetyl_py-*.whl"))
    if found:
        return found[-1]
    with tempfile.TemporaryDirectory(prefix="baetyl-wheel-") as scratch:
        tree = Path(scratch) / "src"
        for relative in files:
            (tree / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, tree / relative)
        if version is not None:
            _replace(tree / "setup.cfg", _VERSION_LINE.search(_read(tree / "setup.cfg")), version)
        for relative, text, replacement in replacements:
            path = tree / relative
            content = _read(path)
            if text not in content:
                raise HarnessError(f"{relative} does not contain {text!r}: update the variant")
            path.write_text(content.replace(text, replacement), encoding="utf-8")
        built = Path(scratch) / "dist"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(built),
                str(tree),
            ],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        wheels = sorted(built.glob("baetyl_py-*.whl"))
        if result.returncode != 0 or not wheels:
            raise HarnessError(f"building the agent wheel failed:\n{result.stderr[-3000:]}")
        out.mkdir(parents=True, exist_ok=True)
        target = out / wheels[-1].name
        # Test workers may build at once: each renames its own copy into place.
        scratch_copy = out / f".{target.name}.{os.getpid()}.tmp"
        shutil.copy2(wheels[-1], scratch_copy)
        scratch_copy.replace(target)
    return target


_VERSION_LINE = re.compile(r"^version = (.+)$", re.MULTILINE)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _replace(path: Path, match: re.Match[str] | None, version: str) -> None:
    if match is None:
        raise HarnessError(f"{path.name} has no version line")
    text = _read(path)
    path.write_text(text[: match.start(1)] + version + text[match.end(1) :], encoding="utf-8")
