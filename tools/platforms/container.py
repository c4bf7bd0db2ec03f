"""A systemd container over a cached rootfs: systemd-nspawn on an overlay, entered with nsenter.

Each container is an overlay: the cached rootfs is the read-only lower layer, `DIR/upper` takes
every write, so booting costs no copy and the cache is never changed; booting the same `DIR`
again is a reboot of the same machine. The overlay is mounted inside a private mount namespace
(`unshare --mount`) that exists only as long as systemd-nspawn runs in it: no mount ever shows
on the host, and none is left behind if a test process dies.

systemd-nspawn runs with `--register=no --keep-unit`, which works where the host's PID 1 is not
systemd (machinectl and `systemd-run -M` do not); commands run inside with `nsenter -t <the
container's PID 1> -a`. The container shares the host's network (no `--private-network`): a
cloud listening on the host's 127.0.0.1 is reachable at the same address from inside, which is
what the cloud's install command names. Ports the container's programs bind are the host's.

`destroy` powers it off (SIGRTMIN+4 to its PID 1), SIGKILLs what is left (PID 1 last: the kernel
then ends every process of its pid namespace) and removes `DIR`.

A container made with `init=False` boots no init: systemd-nspawn runs its own small PID 1
(`--as-pid2`) over `sleep infinity`, and commands enter it the same way. That is how a foreign
architecture's userland runs (its programs under qemu-user, tools/platforms/emulation.py), and a
machine without systemd: its "power off" is SIGKILL to that PID 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from tools.kit.procs import stop_child
from tools.kit.waiting import eventually
from tools.platforms.rootfs import PIP_CACHE, Rootfs

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 120.0
POWEROFF_TIMEOUT = 60.0
RUN_TIMEOUT = 600.0
_POWEROFF = signal.SIGRTMIN + 4  # systemd's "poweroff" signal to PID 1


class ContainerError(RuntimeError):
    """The container did not boot or a command inside failed; the message has its output."""


@dataclass(frozen=True)
class Bind:
    """A host directory mounted inside, at the same path unless `inside` names another."""

    path: Path
    read_only: bool = True
    inside: Path | None = None


@dataclass(frozen=True)
class Result:
    """A command's exit code and its output (stdout and stderr together)."""

    code: int
    out: str


class Container:
    """One machine booted from `rootfs` with its state in `directory` (see the module doc)."""

    def __init__(
        self,
        rootfs: Rootfs,
        directory: Path,
        *,
        name: str,
        binds: Sequence[Bind] = (),
        init: bool = True,
    ) -> None:
        self.rootfs = rootfs
        self.init = init
        self.directory = directory
        self.name = name
        self.binds = [*(Bind(path) for path in rootfs.binds), *binds]
        self.console = directory / "console.log"
        self._nspawn: asyncio.subprocess.Process | None = None
        self._pid1: int | None = None

    @property
    def pid1(self) -> int:
        """The host pid of the container's PID 1 (systemd)."""
        if self._pid1 is None:
            raise ContainerError(f"{self.name} is not running")
        return self._pid1

    @property
    def running(self) -> bool:
        return self._nspawn is not None and self._nspawn.returncode is None

    async def boot(self, *, limit: float = BOOT_TIMEOUT) -> str:
        """Start systemd in the container; return its state once boot finished (`running`).

        Without an init: start it and return `running` once a command runs inside.
        """
        if self.running:
            raise ContainerError(f"{self.name} is already running")
        layers = {name: self.directory / name for name in ("upper", "work", "merged")}
        for path in layers.values():
            path.mkdir(parents=True, exist_ok=True)
        for path in (self.rootfs.path, *layers.values()):
            if any(mark in str(path) for mark in ",:="):
                raise ContainerError(f"an overlay cannot take the path {path} (',', ':' or '=')")
        options = f"lowerdir={self.rootfs.path},upperdir={layers['upper']},workdir={layers['work']}"
        nspawn = ["systemd-nspawn", "--quiet", f"--directory={layers['merged']}",
                  "--register=no", "--keep-unit", "--console=pipe",
                  f"--machine={self.name}"]  # fmt: skip
        nspawn += [
            f"--bind{'-ro' if b.read_only else ''}={b.path}:{b.inside or b.path}"
            for b in self.binds
        ]
        nspawn += ["--boot"] if self.init else ["--as-pid2", "sleep", "infinity"]
        script = 'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"'
        with self.console.open("ab") as console:
            self._nspawn = await asyncio.create_subprocess_exec(
                "unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", script, "sh", options, str(layers["merged"]), *nspawn,
                stdin=asyncio.subprocess.DEVNULL, stdout=console, stderr=console,
            )  # fmt: skip
        nspawn_process = self._nspawn
        self._pid1 = await eventually(
            lambda: _init_of(nspawn_process.pid),
            limit=limit,
            what=f"systemd as PID 1 of {self.name}",
            alive=lambda: nspawn_process.returncode is None,
            detail=self._console_tail,
        )
        last = Result(0, "")
        # Without an init, the first command that runs inside; with systemd, the end of its boot.
        # Right after PID 1 appears its bus may not be up yet: asked again until it answers.
        probe = ["systemctl", "is-system-running", "--wait"] if self.init else ["true"]

        async def settled() -> str | None:
            nonlocal last
            last = await self.run(probe, limit=limit)
            if not self.init:
                return "running" if last.code == 0 else None
            state = last.out.strip()
            return state if state in ("running", "degraded") else None

        state: str = await eventually(
            settled,
            limit=limit,
            poll=0.2,
            what=f"the start of {self.name} ({' '.join(probe)})",
            alive=lambda: nspawn_process.returncode is None,
            detail=lambda: last.out + self._console_tail(),
        )
        return state

    async def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        limit: float = RUN_TIMEOUT,
        cwd: str = "/root",
    ) -> Result:
        """Run `argv` inside (all of the container's namespaces, a clean environment plus `env`)."""
        environment = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        process = await asyncio.create_subprocess_exec(
            "nsenter", "--target", str(self.pid1), "--all", "--",
            # env -C, not nsenter --wd: that one opens the directory on the host's side.
            "/usr/bin/env", "-i", f"--chdir={cwd}",
            *(f"{key}={value}" for key, value in environment.items()),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(process.communicate(), limit)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ContainerError(
                f"{' '.join(argv)} took over {limit:.0f} s in {self.name}"
            ) from None
        assert process.returncode is not None
        return Result(process.returncode, out.decode(errors="replace"))

    async def sh(self, command: str) -> str:
        """`sh -c command` inside; it must succeed. Returns its output."""
        result = await self.run(["sh", "-c", command])
        if result.code != 0:
            raise ContainerError(
                f"`{command}` failed in {self.name} ({result.code}):\n{result.out}"
            )
        return result.out

    async def interactive(self) -> int:
        """A login shell inside on this terminal (for `rootfs shell`); its exit code."""
        process = await asyncio.create_subprocess_exec(
            "nsenter", "--target", str(self.pid1), "--all", "--",
            "/usr/bin/env", "-i", "--chdir=/root", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8",
            f"TERM={os.environ.get('TERM', 'dumb')}", "/bin/bash", "--login",
        )  # fmt: skip
        return await process.wait()

    def processes(self) -> list[psutil.Process]:
        """Every live process of the container (its pid namespace), as the host sees them."""
        try:
            namespace = Path(f"/proc/{self.pid1}/ns/pid").readlink()
        except OSError:
            return []
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{process.pid}/ns/pid").readlink() == namespace:
                    found.append(process)
        return found

    def host_pid(self, pid: int) -> int:
        """The host pid of the process that is `pid` inside the container."""
        for process in self.processes():
            with contextlib.suppress(OSError, ValueError):
                if _namespace_pids(process.pid)[-1] == pid:
                    return process.pid
        raise ContainerError(f"no process {pid} in {self.name}")

    async def poweroff(self, *, limit: float = POWEROFF_TIMEOUT) -> None:
        """Shut the container down as `systemctl poweroff` does; SIGKILL it if that hangs."""
        nspawn, self._nspawn = self._nspawn, None
        pid1, self._pid1 = self._pid1, None
        if nspawn is None or nspawn.returncode is not None:
            return
        if pid1 is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid1, _POWEROFF if self.init else signal.SIGKILL)
        try:
            await asyncio.wait_for(nspawn.wait(), limit)
        except TimeoutError:
            if pid1 is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid1, signal.SIGKILL)
            await stop_child(nspawn, grace=10)
            raise ContainerError(
                f"{self.name} did not power off in {limit:.0f} s{self._console_tail()}"
            ) from None

    async def destroy(self) -> None:
        """Power off (or kill) the container and remove its directory; safe to call twice."""
        pid1, nspawn = self._pid1, self._nspawn
        try:
            await self.poweroff()
        finally:
            for pid in (pid1, nspawn.pid if nspawn is not None else None):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if nspawn is not None and nspawn.returncode is None:
                await nspawn.wait()
            shutil.rmtree(self.directory, ignore_errors=True)

    def _console_tail(self) -> str:
        try:
            lines = self.console.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\nconsole:\n" + "\n".join(lines) if lines else ""


def _namespace_pids(pid: int) -> list[int]:
    """A process's pid in each nested pid namespace, outermost first (/proc/PID/status NSpid)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("NSpid:"):
            return [int(word) for word in line.split()[1:]]
    raise ValueError(f"/proc/{pid}/status has no NSpid")


def _init_of(nspawn: int) -> int | None:
    """The host pid of PID 1 of the container systemd-nspawn `nspawn` started, once it exists."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(nspawn).children(recursive=True):
            with contextlib.suppress(OSError, ValueError):
                pids = _namespace_pids(child.pid)
                if len(pids) > 1 and pids[-1] == 1:
                    return child.pid
    return None


def node_machine(
    rootfs: Rootfs, directory: Path, *, name: str, init: bool | None = None
) -> Container:
    """A machine to install nodes on: the pip cache and the platform's apt archive cache bound in.

    pip's cache (with the wheels pip built on armv7) and apt's downloads outlive the machine:
    the next one installs the same packages without downloading or compiling them again.
    `init`: boot systemd (the default where the rootfs has it) or run as a plain container.
    """
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    (rootfs.apt_archives / "partial").mkdir(parents=True, exist_ok=True)
    return Container(
        rootfs,
        directory,
        name=name,
        binds=[
            Bind(PIP_CACHE, read_only=False),
            Bind(rootfs.apt_archives, read_only=False, inside=Path("/var/cache/apt/archives")),
        ],
        init=rootfs.boots if init is None else init,
    )
