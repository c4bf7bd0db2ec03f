"""Fixtures of the platform tests: the cached systemd rootfs and a booted container over it.

The rootfs is built on first use (≈ 1 min, under a lock, tools/platforms/rootfs.py) and reused
by every later session; each test boots its own overlay of it (≈ 1 s) and the container is
powered off, killed and removed after the test, whatever its outcome. Where the machine cannot
build or boot it (not root, no debootstrap or systemd-nspawn, no Debian mirror in the apt
sources, no mount namespaces) the tests skip and say why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.platforms import rootfs as rootfs_cache
from tools.platforms import sources
from tools.platforms.container import Bind, Container

PIP_CACHE = rootfs_cache.CACHE.parent / "pip"
"""The tests' pip cache (as tests/harness/venv.py's): bound into the container, read and written."""


def unavailable() -> str | None:
    """Why systemd containers cannot run here, or None."""
    build = rootfs_cache.ready(rootfs_cache.systemd_platform()) is None
    missing = rootfs_cache.missing_tools(build=build)
    if missing:
        return "missing: " + "; ".join(missing)
    if build:
        try:
            sources.mirror("bookworm")
        except sources.NoMirror as exc:
            return str(exc)
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if probe.returncode != 0:
        return f"cannot make a mount namespace (unshare --mount: {probe.stderr.strip()})"
    return None


@pytest.fixture(scope="session")
def systemd_rootfs() -> rootfs_cache.Rootfs:
    """The cached Debian bookworm rootfs with systemd, built on first use."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"a systemd container cannot run on this machine: {reason}")
    return rootfs_cache.ensure(rootfs_cache.systemd_platform())


@pytest.fixture
async def systemd_container(
    systemd_rootfs: rootfs_cache.Rootfs, tmp_path: Path
) -> AsyncIterator[Container]:
    """A booted container (systemd as PID 1) with the tests' pip cache bound at its own path."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    container = Container(
        systemd_rootfs,
        tmp_path / "machine",
        name=f"baetyl-{os.getpid()}",
        binds=[Bind(PIP_CACHE, read_only=False)],
    )
    try:
        await container.boot()
        yield container
    finally:
        await container.destroy()
