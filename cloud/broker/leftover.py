"""A broker that an earlier cloud left running (it was killed before it could stop it): found by
its pid file, trusted only if its command line is ours, stopped through a pidfd."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from cloud.broker.errors import BrokerError

log = logging.getLogger(__name__)
STOP_TIMEOUT = 5.0


async def replace_stale(pid_file: Path, binary: str, config_file: Path) -> None:
    """Stop a broker of this data directory left over from a cloud that did not stop it.

    The pid in `pid_file` is trusted only if /proc/<pid>/cmdline is `<binary> -c <config_file>`:
    a pid file can outlive its process and the pid be reused by anything. The check and the
    signals go through a pidfd, so the pid cannot be reused between them.
    """
    pid = await asyncio.to_thread(_read_pid, pid_file)
    if pid is None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # no such process any more
    try:
        if not await asyncio.to_thread(_is_broker_of, pid, binary, config_file):
            return
        log.warning(
            "stopping a stale broker of this data directory (its cloud did not stop it)",
            extra={"broker_pid": pid, "config": str(config_file)},
        )
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await _exited(pidfd)
            except TimeoutError:
                continue
            return
        raise BrokerError(f"the stale broker {pid} of {config_file} survived SIGKILL")
    finally:
        os.close(pidfd)


async def _exited(pidfd: int) -> None:
    """Return once the process of `pidfd` has exited (a pidfd becomes readable then)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)


def _read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def _is_broker_of(pid: int, binary: str, config_file: Path) -> bool:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    args = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    if len(args) < 3 or Path(args[0]).name != Path(binary).name:
        return False
    return any(
        args[index] == "-c" and args[index + 1] == str(config_file)
        for index in range(1, len(args) - 1)
    )
