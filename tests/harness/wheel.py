"""The agent wheel the cloud serves to installing nodes, built once from the working tree.

Built from a copy of the sources (so a stale `build/` in the tree cannot leak into it) and cached
under ~/.cache/baetyl-py/wheels/<hash of the sources>/: an unchanged tree reuses the wheel of an
earlier session, any edit builds a new one.
"""

from __future__ import annotations

import hashlib
import os
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


def agent_wheel() -> Path:
    """The path of a wheel of the current sources, building it if the cache has none."""
    files = source_files()
    out = CACHE / "wheels" / source_hash(files)
    found = sorted(out.glob("baetyl_py-*.whl"))
    if found:
        return found[-1]
    with tempfile.TemporaryDirectory(prefix="baetyl-wheel-") as scratch:
        tree = Path(scratch) / "src"
        for relative in files:
            (tree / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, tree / relative)
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
