"""Processes seen from outside: alive, stopped, started detached, their logs, their ports.

The blocking calls (psutil, waits) are for `asyncio.to_thread` or synchronous cleanup code (a
benchmark's reaper also runs after its event loop is gone); `stop_child` and `run_streamed` are
the asyncio ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import psutil

from tools.kit.progress import Progress

HOST = "127.0.0.1"
KILL_WAIT = 5.0  # after SIGKILL, the kernel ends a process at once; this only bounds the reap


class KitError(RuntimeError):
    """A process could not be started, stopped or run; the message says what to look at."""


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (ended, not yet reaped by its parent) does not.

    It never reaps: the pid may be an asyncio child whose watcher must see its exit status.
    """
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(process: psutil.Process, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended after `timeout` seconds; reaped if our child."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(KILL_WAIT)


async def stop_child(process: asyncio.subprocess.Process, *, grace: float) -> int:
    """The asyncio twin of `stop` for our own child: SIGTERM, SIGKILL after `grace` s; its code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return await process.wait()


def stop_groups(processes: Iterable[psutil.Process], *, timeout: float) -> None:
    """SIGTERM the process groups of `processes`, SIGKILL what is left after `timeout` s.

    App instances run in process groups of their own (the native backend's), so a group signal
    also reaches what an app forked.
    """
    processes = list(processes)
    groups = set()
    for process in processes:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(process.pid))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p.pid) for p in processes):
            time.sleep(0.1)
        if not any(alive(p.pid) for p in processes):
            return
    raise KitError(f"could not stop processes {[p.pid for p in processes]}")


def app_processes(run_dir: Path, app: str | None = None) -> list[psutil.Process]:
    """Every live app instance process of the agent whose run directory is `run_dir` (of `app`
    only, if given).

    The native backend gives each instance `BAETYL_INSTANCE_DIR` under the run directory and
    `BAETYL_APP_NAME`: that, not a pid file, finds instances an agent left behind.
    """
    prefix = f"{run_dir}{os.sep}"
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if not env.get("BAETYL_INSTANCE_DIR", "").startswith(prefix):
                continue
            if (app is None or env.get("BAETYL_APP_NAME") == app) and alive(process.pid):
                found.append(process)
    return found


def process_from(pid_file: Path, *, program: str, marker: str) -> psutil.Process | None:
    """The live process `pid_file` names, if it is `program` with `marker` on its command line."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        process = psutil.Process(pid)
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    ours = any(Path(part).name == program for part in command[:2]) and marker in command
    return process if ours and alive(pid) else None


def processes_with(*arguments: str, program: str | None = None) -> list[psutil.Process]:
    """Live processes with every one of `arguments` on their command line (a broker by its
    config file, an agent by its core.yml), and running `program` if given."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            command = process.cmdline()
            if program is not None and not any(Path(p).name == program for p in command[:2]):
                continue
            if all(argument in command for argument in arguments) and alive(process.pid):
                found.append(process)
    return found


def process_with(argument: str) -> psutil.Process | None:
    """The first live process with `argument` on its command line, if any."""
    return next(iter(processes_with(argument)), None)


def spawn_detached(argv: list[str], *, log: Path, pid_file: Path | None = None) -> int:
    """Start `argv` in its own session, output appended to `log`; it outlives its starter."""
    pid = os.posix_spawn(
        argv[0],
        argv,
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,  # a Ctrl-C in the starter's terminal must not reach it
    )
    if pid_file is not None:
        pid_file.write_text(f"{pid}\n", encoding="ascii")
    return pid


def tail(path: Path, lines: int = 20, *, indent: str = "") -> str:
    """The last `lines` lines of a text file, or a note that it cannot be read (for messages)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{indent}({path} cannot be read)"
    return "\n".join(f"{indent}{line}" for line in text.splitlines()[-lines:]) or f"{indent}(empty)"


def port_owner(port: int) -> str | None:
    """`name (pid N)` of the process listening on `port`, when the system tells us."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
            and connection.pid
        ):
            with contextlib.suppress(psutil.Error):
                return f"{psutil.Process(connection.pid).name()} (pid {connection.pid})"
    return None


def port_in_use(port: int, host: str = HOST) -> str | None:
    """Who holds `host:port` ("in use", or "in use by NAME (pid N)"), or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        else:
            return None
    owner = port_owner(port)
    return f"in use by {owner}" if owner else "in use"


async def run_streamed(
    argv: list[str],
    *,
    progress: Progress,
    limit: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    show: Callable[[str], bool] = lambda line: True,
) -> int:
    """Run a command to its end; its exit code. The lines `show` picks are shown as the step's
    details, all of them are appended to `log`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(limit):
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if show(line):
                    progress.detail(line)
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise KitError(f"{argv[0]} did not finish within {limit:.0f} s") from None
    finally:
        if log is not None:
            await asyncio.to_thread(_append, log, lines)
    return code


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)
