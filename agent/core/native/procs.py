"""App processes: start them detached from the agent, watch them end, signal them, adopt them.

Every instance runs in its own session (hence its own process group), with stdin from /dev/null
and stdout/stderr appended to its log file, so nothing ties it to the agent: no pipe, no
controlling terminal, no parent-death signal. It outlives the agent, and a new agent finds it
again from its pid and its start time (clock ticks since boot, plus the boot id: immune to the
wall clock being stepped, which is common on boards without an RTC).

Exits are noticed through a pidfd (Linux ≥ 5.3; it works for processes that are not our children
too) registered with the event loop, else by polling. Our own children are reaped; the exit code
of an adopted process is unknown (its parent is init now).

When an instance's main process ends, what is left of its process group is killed, as a
container's processes die with its main process: a restarted instance must not find its
predecessor's workers holding its port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

from agent.core.native import logfiles

log = logging.getLogger(__name__)

MARKER = "BAETYL_INSTANCE_DIR"
"""Environment variable naming an instance's directory; finds instances the bookkeeping missed."""
PORT_VARIABLE = "BAETYL_SERVICE_DYNAMIC_PORT"

USE_PIDFD = hasattr(os, "pidfd_open")
"""Watch exits through pidfds; False polls instead (old kernels; a test covers that path)."""

_parked: dict[int, subprocess.Popen[bytes]] = {}
"""Children that a closed backend left running. Kept referenced so that `Popen.__del__` neither
warns nor reaps them behind the back of a backend of this same process that adopts them."""


class SpawnError(Exception):
    """The program could not be started; the message is the instance's cause (`exec failed: …`)."""


@dataclass(frozen=True)
class ProcessId:
    """Who a process is, in a way that survives agent restarts and tells a reused pid apart."""

    pid: int
    create_time: float
    """psutil's create time (wall clock, for reports)."""
    start_ticks: int | None = None
    """Start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    boot_id: str = ""

    def same(self, other: ProcessId) -> bool:
        """True if both describe one process (same pid, same start since the same boot)."""
        if self.pid != other.pid:
            return False
        if self.start_ticks is not None and other.start_ticks is not None:
            return self.start_ticks == other.start_ticks and self.boot_id == other.boot_id
        return abs(self.create_time - other.create_time) < 0.01


@cache
def boot_id() -> str:
    """This boot's random id (processes of an earlier boot are certainly gone)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def identify(pid: int, *, allow_zombie: bool = False) -> ProcessId | None:
    """The identity of the live process `pid`, or None if it does not exist (or is a zombie)."""
    ticks: int | None = None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    if stat:
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and not allow_zombie:
            return None
        ticks = int(fields[19])
    try:
        process = psutil.Process(pid)
        if not stat and process.status() == psutil.STATUS_ZOMBIE and not allow_zombie:
            return None
        created = process.create_time()
    except psutil.Error:
        return None
    return ProcessId(pid, created, ticks, boot_id())


def describe_exit(code: int | None) -> str:
    """`exited with code 3`, `killed by signal 9 (SIGKILL)`, or that the code is unknown."""
    if code is None:
        return "exited (exit code unknown: the process was adopted)"
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"killed by signal {-code}"
    return f"killed by signal {-code} ({name})"


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path) -> Proc:
    """Start `argv` in a new session, output appended to `log_path`. Blocking: run in a thread."""
    fd = logfiles.open_for_child(log_path)
    try:
        popen = subprocess.Popen(  # noqa: S603 - the app's own command, by design
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError) as exc:
        raise SpawnError(f"exec failed: {exc}") from exc
    finally:
        os.close(fd)
    ident = identify(popen.pid, allow_zombie=True) or ProcessId(popen.pid, time.time())
    return Proc(ident, popen=popen, pidfd=_pidfd_open(popen.pid))


def adopt(recorded: ProcessId) -> Proc | None:
    """The process `recorded` if it still runs (same start time), else None. Blocking, short."""
    parked = _parked.pop(recorded.pid, None)
    if parked is not None:
        if parked.poll() is not None:
            return None  # it ended while nobody watched: reaped now, exit code lost
        current = identify(recorded.pid, allow_zombie=True)
        if current is None or not current.same(recorded):
            _parked[recorded.pid] = parked
            return None
        return Proc(current, popen=parked, pidfd=_pidfd_open(recorded.pid))
    current = identify(recorded.pid)
    if current is None or not current.same(recorded):
        return None
    pidfd = _pidfd_open(recorded.pid)
    # The pidfd pins the process it was opened for; checking again proves that is ours.
    again = identify(recorded.pid)
    if again is None or not again.same(recorded):
        if pidfd is not None:
            os.close(pidfd)
        return None
    return Proc(current, pidfd=pidfd)


@dataclass(frozen=True)
class Marked:
    """A session leader carrying our instance marker, found by scanning the process table."""

    ident: ProcessId
    directory: Path
    port: int | None


def find_marked(run_dir: Path) -> dict[Path, Marked]:
    """Session leaders whose marker names an instance directory under `run_dir`, by directory.

    Covers what bookkeeping cannot: an agent killed between starting a process and recording it.
    When several leaders claim one directory the oldest wins (the app's own main process; a
    daemon it spawned with setsid is younger). Blocking (reads /proc): run in a thread.
    """
    reap_parked()
    prefix = f"{run_dir}{os.sep}"
    found: dict[Path, Marked] = {}
    for process in psutil.process_iter():
        pid = process.pid
        try:
            if os.getsid(pid) != pid:
                continue
            environ = process.environ()
        except (psutil.Error, OSError):
            continue
        value = environ.get(MARKER, "")
        if not value.startswith(prefix):
            continue
        ident = identify(pid)
        if ident is None:
            continue
        directory = Path(value)
        port_text = environ.get(PORT_VARIABLE, "")
        port = int(port_text) if port_text.isdigit() else None
        known = found.get(directory)
        if known is None or (ident.start_ticks or 0) < (known.ident.start_ticks or 0):
            found[directory] = Marked(ident, directory, port)
    return found


def reap_parked() -> None:
    """Reap parked children that ended (no zombies, even when nobody adopts them)."""
    for pid, popen in list(_parked.items()):
        if popen.poll() is not None:
            del _parked[pid]


class Proc:
    """One app process (our child, or adopted) and the future of its end.

    `watch()` must be called from the event loop before `exited` or `terminate` are used.
    """

    def __init__(
        self,
        ident: ProcessId,
        *,
        popen: subprocess.Popen[bytes] | None = None,
        pidfd: int | None = None,
    ) -> None:
        self.ident = ident
        self._popen = popen
        self._pidfd = pidfd
        self._exited: asyncio.Future[int | None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int:
        """The process id (also its process group and session id)."""
        return self.ident.pid

    @property
    def is_child(self) -> bool:
        """True if this process is our child (exit code known, reaped by us)."""
        return self._popen is not None

    @property
    def exited(self) -> asyncio.Future[int | None]:
        """Resolves with the exit code (negative: signal; None: unknown) once the process ended."""
        if self._exited is None:
            raise RuntimeError("Proc.watch() was not called")
        return self._exited

    def watch(self, *, poll_interval: float) -> None:
        """Start noticing the end of the process (pidfd reader, or a polling task)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._exited = loop.create_future()
        if self._pidfd is not None:
            loop.add_reader(self._pidfd, self._finish)
        else:
            self._poller = loop.create_task(
                self._poll(poll_interval), name=f"native-proc-{self.pid}-poll"
            )

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the process group, unless its leader is gone (then the group id could
        belong to somebody else by now; the end-of-leader sweep has handled the group)."""
        if self._exited is not None and self._exited.done():
            return
        if self._popen is None and not self._leader_alive():
            return
        _killpg(self.pid, sig)

    async def terminate(self, grace: float) -> int | None:
        """SIGTERM to the group, SIGKILL after `grace` seconds; the exit code once it ended."""
        exited = self.exited
        self.signal_group(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(exited), grace)
        except TimeoutError:
            log.warning(
                "instance did not stop within the grace period; killing it",
                extra={"pid": self.pid, "grace_period": grace},
            )
        self.signal_group(signal.SIGKILL)
        return await asyncio.shield(exited)

    def detach(self) -> None:
        """Stop watching and leave the process running (agent shutdown)."""
        self._unwatch()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._popen is not None and self._popen.returncode is None:
            _parked[self.pid] = self._popen
            self._popen = None

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _leader_alive(self) -> bool:
        if self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            return not readable
        current = identify(self.pid)
        return current is not None and current.same(self.ident)

    def _finish(self) -> None:
        """The leader ended: kill what is left of its group, reap it, resolve `exited`."""
        self._unwatch()
        code: int | None = None
        if self._popen is not None:
            # Not reaped yet, so the pid (and group id) cannot have been reused: safe to signal.
            _killpg(self.pid, signal.SIGKILL)
            code = self._popen.wait()
        else:
            self._sweep_adopted_group()
            code = _reap_if_child(self.pid)
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(code)

    def _sweep_adopted_group(self) -> None:
        # A pid is not reused while a process group of that id has members; if a process with
        # the pid exists it must be our (zombie) leader, else the group is not ours any more.
        current = identify(self.pid, allow_zombie=True)
        if current is None or current.same(self.ident):
            _killpg(self.pid, signal.SIGKILL)

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._popen is not None:
                try:
                    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT  # never blocks, never reaps
                    ended = os.waitid(os.P_PID, self.pid, flags)  # noqa: ASYNC222
                except ChildProcessError:
                    ended = None
                    self._popen = None
                if ended is not None:
                    break
            elif not self._leader_alive():
                break
        self._poller = None
        self._finish()


def _reap_if_child(pid: int) -> int | None:
    """Reap an adopted process that is our child after all, and its exit code.

    An agent that upgraded itself replaced its own program in place (same pid, decision #153):
    the apps it started are still its children, so their ends must be reaped here, or they
    would stay zombies. An adopted process whose parent is init is not ours: None.
    """
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if reaped != pid:
        return None
    return os.waitstatus_to_exitcode(status)


def _pidfd_open(pid: int) -> int | None:
    if not USE_PIDFD:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning(
            "not allowed to signal a process group", extra={"pgid": pgid, "signal": sig.name}
        )
