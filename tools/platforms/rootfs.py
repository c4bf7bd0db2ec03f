"""Debian root filesystems for the platform tests, built once per machine and cached.

    python -m tools.platforms.rootfs build            build the systemd rootfs (≈ 1 min) or reuse it
    python -m tools.platforms.rootfs status           where it is, when and how it was built
    python -m tools.platforms.rootfs shell            boot a throwaway copy, open a shell in it
    python -m tools.platforms.rootfs remove           delete it (the next build starts over)
    ... --platform arm64|armhf                        the same for an ARM userland (≈ 3 to 4 min)

`debootstrap --variant=minbase` from the Debian mirror the host's apt sources name
(tools/platforms/sources.py), then the host's CA bundle and pip settings (hostconf.py). An ARM
userland is built in two stages: debootstrap `--foreign` unpacks it, then its second stage runs
inside it under qemu-user, with the emulator copied in (tools/platforms/emulation.py). The cache
is ~/.cache/baetyl-py/platforms/<name>/ (BAETYL_TEST_CACHE moves ~/.cache/baetyl-py): a rootfs is
built in `<name>.partial/`, its `ready.json` written, and only then renamed into place, so a
directory without `ready.json` (or without its init and python3) is damaged and built again. One
builder at a time, by an exclusive lock on `<name>.lock`; the others wait for it and reuse its
result. Nothing ever writes into a ready rootfs: containers boot an overlay of it (container.py).
Needs root, debootstrap and systemd-container, and for ARM qemu-user-static and binfmt-support
(`make system-deps` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tools.kit.progress import Progress
from tools.platforms import emulation, hostconf, sources

CACHE = Path(os.environ.get("BAETYL_TEST_CACHE", Path.home() / ".cache/baetyl-py")) / "platforms"
PIP_CACHE = CACHE.parent / "pip"
"""pip's cache of the tests (as tests/harness/venv.py's), bound read-write into every machine."""
BUILD_TIMEOUT = 900.0
_READY = "ready.json"


class RootfsError(RuntimeError):
    """A rootfs could not be built here; the message says what is missing or what failed."""


@dataclass(frozen=True)
class Platform:
    """A Debian userland: its suite, dpkg architecture and the packages added to minbase."""

    name: str
    suite: str
    arch: str
    include: tuple[str, ...]
    needs: tuple[str, ...] = ()
    """Files (relative to the rootfs) a complete build has: checked before every use."""


def host_arch() -> str:
    """This machine's dpkg architecture (amd64, arm64, …)."""
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"],  # noqa: S607 - dpkg from PATH on a Debian host
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise RootfsError(f"dpkg --print-architecture failed ({exc}): not a Debian host?") from exc


def systemd_platform() -> Platform:
    """Debian bookworm with systemd as init, Python 3.11 and curl: what the install script needs."""
    return Platform(
        name=f"bookworm-{host_arch()}-systemd",
        suite="bookworm",
        arch=host_arch(),
        include=("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "curl",
                 "ca-certificates"),
        needs=("sbin/init", "usr/bin/python3", "usr/bin/curl"),
    )  # fmt: skip


ARM_ARCHES = ("arm64", "armhf")
"""The ARM userlands the platform tests run under emulation: 64-bit, and 32-bit ARMv7 (armv7l)."""


def arm_platform(arch: str) -> Platform:
    """Debian bookworm for `arch` (arm64 or armhf) without an init: what the install script needs.

    It runs under qemu-user (emulation.py), as a plain container: no systemd, so the install
    script starts baetyl-core without it, as on a board whose init is not systemd.
    """
    if arch not in ARM_ARCHES:
        raise RootfsError(f"no ARM platform {arch!r} (known: {', '.join(ARM_ARCHES)})")
    return Platform(
        name=f"bookworm-{arch}",
        suite="bookworm",
        arch=arch,
        include=("python3", "python3-venv", "curl", "ca-certificates"),
        needs=("usr/bin/python3", "usr/bin/curl"),
    )


def platform_named(name: str) -> Platform:
    """`systemd` (this machine's architecture) or an ARM architecture (`arm64`, `armhf`)."""
    return systemd_platform() if name == "systemd" else arm_platform(name)


@dataclass(frozen=True)
class Rootfs:
    """A ready rootfs in the cache and what its `ready.json` records."""

    path: Path
    info: dict[str, Any]

    @property
    def binds(self) -> list[Path]:
        """Host directories its pip settings name: bound read-only at the same path."""
        return [Path(path) for path in self.info.get("binds", []) if Path(path).is_dir()]

    @property
    def arch(self) -> str:
        return str(self.info["arch"])

    @property
    def boots(self) -> bool:
        """Whether it has systemd to boot (else it runs as a plain container)."""
        return "systemd-sysv" in self.info.get("include", [])

    @property
    def apt_archives(self) -> Path:
        """The host directory for the .deb files apt downloads inside (one per platform)."""
        return CACHE / f"apt-{self.info['platform']}"


def directory(platform: Platform) -> Path:
    return CACHE / platform.name


def missing_tools(*, build: bool = True, arch: str | None = None) -> list[str]:
    """What this machine lacks to boot the rootfs, and to build it with `build` (empty: nothing).

    `arch`: the rootfs's architecture; another than this machine's needs its emulator too.
    """
    missing = []
    if arch is not None and arch != host_arch():
        missing += emulation.missing_tools(arch)
    if os.geteuid() != 0:
        missing.append("root (debootstrap, mounts and systemd-nspawn need it)")
    tools = [("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux"),
             ("unshare", "util-linux")]  # fmt: skip
    if build:
        tools.insert(0, ("debootstrap", "debootstrap"))
    for tool, package in tools:
        if shutil.which(tool) is None:
            missing.append(f"{tool} (apt-get install {package}, or `make system-deps`)")
    return missing


def ready(platform: Platform) -> Rootfs | None:
    """The cached rootfs if it is complete, else None."""
    top = directory(platform)
    try:
        info = json.loads((top / _READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rootfs = top / "rootfs"
    if not isinstance(info, dict) or not all((rootfs / need).exists() for need in platform.needs):
        return None
    return Rootfs(rootfs, info)


def ensure(platform: Platform, progress: Progress | None = None) -> Rootfs:
    """The cached rootfs, built first if it is missing or damaged (one builder at a time)."""
    found = ready(platform)
    if found is not None:
        return found
    progress = progress or Progress("platforms")
    with _locked(platform, progress):
        found = ready(platform)  # another process may have built it while this one waited
        if found is not None:
            return found
        return _build(platform, progress)


def remove(platform: Platform) -> None:
    """Delete the cached rootfs (under the lock, so no build is cut in half)."""
    with _locked(platform, Progress("platforms")):
        shutil.rmtree(directory(platform), ignore_errors=True)
        shutil.rmtree(_partial(platform), ignore_errors=True)


@contextlib.contextmanager
def _locked(platform: Platform, progress: Progress) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{platform.name}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.say(f"waiting for another process building {platform.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _partial(platform: Platform) -> Path:
    return CACHE / f"{platform.name}.partial"


def _build(platform: Platform, progress: Progress) -> Rootfs:
    missing = missing_tools(arch=platform.arch)
    if missing:
        raise RootfsError("cannot build a rootfs here; missing: " + "; ".join(missing))
    mirror = sources.mirror(platform.suite)
    top, partial = directory(platform), _partial(platform)
    shutil.rmtree(top, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rootfs = partial / "rootfs"
    log = CACHE / f"{platform.name}.build.log"
    foreign = platform.arch != host_arch()
    argv = ["debootstrap", "--variant=minbase", f"--arch={platform.arch}",
            f"--include={','.join(platform.include)}"]  # fmt: skip
    if foreign:
        # Only the first stage (unpacking) here; the second runs the packages' own programs.
        argv.append("--foreign")
    if mirror.keyring is not None and Path(mirror.keyring).is_file():
        argv.append(f"--keyring={mirror.keyring}")
    argv += [platform.suite, str(rootfs), mirror.uri]
    started = time.monotonic()
    with log.open("w") as out:
        with progress.step(f"debootstrap {platform.suite} ({platform.arch}) from {mirror.uri}"):
            _logged(argv, out, log, "debootstrap")
        if foreign:
            with progress.step(f"the second stage under qemu-user ({platform.arch}, ≈ 3 min)"):
                try:
                    emulator = emulation.ensure(platform.arch)
                except emulation.EmulationError as exc:
                    raise RootfsError(str(exc)) from exc
                emulation.install_into(emulator, rootfs)
                # In a mount namespace of its own: the /proc and /sys it mounts vanish with it.
                second = ["unshare", "--mount", "--propagation", "private", "--", "chroot",
                          str(rootfs), "/debootstrap/debootstrap", "--second-stage"]  # fmt: skip
                _logged(second, out, log, "debootstrap --second-stage")
    with progress.step("the host's CA bundle and pip settings"):
        settings = hostconf.pip_settings()
        hostconf.apply(rootfs, settings)
        # Every boot of a copy the same machine id: the journal of a rebooted copy stays one.
        (rootfs / "etc/machine-id").write_text(os.urandom(16).hex() + "\n", encoding="ascii")
    size = _disk_bytes(rootfs)
    info: dict[str, Any] = {
        "platform": platform.name,
        "suite": platform.suite,
        "arch": platform.arch,
        "include": list(platform.include),
        "mirror": mirror.uri,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
        "bytes": size,
        "binds": [str(path) for path in settings.directories],
    }
    # Written last, then renamed into place: a rootfs with ready.json is complete.
    (partial / _READY).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    partial.rename(top)
    progress.say(f"{platform.name} ready in {top} ({size / 2**20:.0f} MB)")
    built = ready(platform)
    if built is None:
        raise RootfsError(f"{top} was built but lacks one of {platform.needs}")
    return built


def _logged(argv: list[str], out: IO[str], log: Path, what: str) -> None:
    """Run a build step with its output appended to the build log; a failure quotes its end."""
    out.flush()
    try:
        result = subprocess.run(  # noqa: S603 - fixed programs, our arguments
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RootfsError(f"{what} took over {BUILD_TIMEOUT:.0f} s; see {log}") from exc
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RootfsError(f"{what} failed (exit {result.returncode}); {log} ends:\n{tail}")


def _disk_bytes(top: Path) -> int:
    total = 0
    for path in top.rglob("*"):
        with contextlib.suppress(OSError):
            total += path.lstat().st_blocks * 512
    return total


async def _shell(platform: Platform) -> int:
    from tools.platforms.container import node_machine  # noqa: PLC0415 - only this command boots

    rootfs = ensure(platform)
    with tempfile.TemporaryDirectory(prefix="baetyl-rootfs-") as scratch:
        container = node_machine(rootfs, Path(scratch), name="baetyl-shell")
        try:
            await container.boot()
            sys.stdout.write(f"booted; its PID 1 is {container.pid1} (exit the shell to stop it)\n")
            return await container.interactive()
        finally:
            await container.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.platforms.rootfs",
        description="Build, inspect and try the cached Debian rootfs of the platform tests.",
    )
    parser.add_argument(
        "command",
        choices=("build", "status", "shell", "remove"),
        help="build: build it unless it is ready; status: print where and how it was built; "
        "shell: boot a throwaway overlay of it and open a shell inside; remove: delete it",
    )
    parser.add_argument("--rebuild", action="store_true", help="build: remove it first")
    parser.add_argument(
        "--platform",
        choices=("systemd", *ARM_ARCHES),
        default="systemd",
        help="which rootfs: systemd (this machine's architecture, booted with systemd; the "
        "default), or an ARM userland run under qemu-user without an init",
    )
    args = parser.parse_args(argv)
    try:
        platform = platform_named(args.platform)
        if args.command == "remove" or args.rebuild:
            remove(platform)
        if args.command == "build":
            rootfs = ensure(platform)
            sys.stdout.write(json.dumps({"path": str(rootfs.path), **rootfs.info}, indent=2) + "\n")
        elif args.command == "status":
            found = ready(platform)
            if found is None:
                sys.stdout.write(
                    f"{platform.name}: not built (python -m tools.platforms.rootfs build)\n"
                )
                return 1
            sys.stdout.write(json.dumps({"path": str(found.path), **found.info}, indent=2) + "\n")
        elif args.command == "shell":
            return asyncio.run(_shell(platform))
    except (RootfsError, sources.NoMirror, emulation.EmulationError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
