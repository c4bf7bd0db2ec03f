"""Fixtures of the platform tests: the cached root filesystems and containers booted over them.

A rootfs is built on first use (the systemd one ≈ 1 min, an ARM one ≈ 3 to 4 min under
emulation; under a lock, tools/platforms/rootfs.py) and reused by every later session; each test
boots its own overlay of it (≈ 1 s) and the container is powered off, killed and removed after
the test, whatever its outcome. Where the machine cannot build or boot one (not root, no
debootstrap or systemd-nspawn, no Debian mirror in the apt sources, no mount namespaces; for ARM
no qemu-user-static or binfmt-support, or binfmt_misc cannot be mounted) the tests skip and say
why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.platforms import emulation, sources
from tools.platforms import rootfs as rootfs_cache
from tools.platforms.container import Container, node_machine

PIP_CACHE = rootfs_cache.PIP_CACHE


def unavailable(platform: rootfs_cache.Platform) -> str | None:
    """Why containers of `platform` cannot run here, or None. For another architecture than
    this machine's it first makes the emulator usable (tools/platforms/emulation.py `ensure`)."""
    build = rootfs_cache.ready(platform) is None
    missing = rootfs_cache.missing_tools(build=build, arch=platform.arch)
    if missing:
        return "missing: " + "; ".join(missing)
    if platform.arch != rootfs_cache.host_arch():
        try:
            emulation.ensure(platform.arch)
        except emulation.EmulationError as exc:
            return str(exc)
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


def cached(platform: rootfs_cache.Platform, what: str) -> rootfs_cache.Rootfs:
    """The platform's cached rootfs, built first if needed; a skip saying why where it cannot."""
    reason = unavailable(platform)
    if reason is not None:
        pytest.skip(f"{what} cannot run on this machine: {reason}")
    return rootfs_cache.ensure(platform)


@pytest.fixture(scope="session")
def systemd_rootfs() -> rootfs_cache.Rootfs:
    """The cached Debian bookworm rootfs with systemd, built on first use."""
    return cached(rootfs_cache.systemd_platform(), "a systemd container")


@pytest.fixture
async def systemd_container(
    systemd_rootfs: rootfs_cache.Rootfs, tmp_path: Path
) -> AsyncIterator[Container]:
    """A booted container (systemd as PID 1) with the tests' pip cache bound at its own path."""
    async with booted(systemd_rootfs, tmp_path, f"baetyl-{os.getpid()}") as container:
        yield container


@pytest.fixture(scope="session", params=rootfs_cache.ARM_ARCHES)
def arm_rootfs(request: pytest.FixtureRequest) -> rootfs_cache.Rootfs:
    """The cached Debian bookworm userland of an ARM architecture, built on first use."""
    return cached(rootfs_cache.arm_platform(request.param), f"an {request.param} userland")


@pytest.fixture
async def arm_container(
    arm_rootfs: rootfs_cache.Rootfs, tmp_path: Path
) -> AsyncIterator[Container]:
    """A container of the ARM userland (no init; its programs under qemu-user), with the tests'
    pip cache and the userland's own apt archive cache bound in."""
    async with booted(arm_rootfs, tmp_path, f"baetyl-{arm_rootfs.arch}-{os.getpid()}") as machine:
        yield machine


@contextlib.asynccontextmanager
async def booted(
    rootfs: rootfs_cache.Rootfs, tmp_path: Path, name: str
) -> AsyncIterator[Container]:
    """A machine over `rootfs` (tools/platforms/container.py `node_machine`), destroyed after."""
    container = node_machine(rootfs, tmp_path / "machine", name=name)
    try:
        await container.boot()
        yield container
    finally:
        await container.destroy()
