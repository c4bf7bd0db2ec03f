"""Helpers shared by the test harness: free ports, waiting with deadlines, stopping processes."""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class HarnessError(RuntimeError):
    """A test dependency (broker, database) could not be set up; the message says what to do."""


PORTS_PER_WORKER = 1500
SERVER_PORTS = 1000
"""The first part of a worker's block goes to free_port, the rest to port_range (agents)."""
AGENT_PORTS = 50
"""Ports of one agent's native range (its apps' BAETYL_SERVICE_DYNAMIC_PORT)."""
_FIRST_PORT = 10000


def _ephemeral_floor() -> int:
    """The lowest port the kernel picks for outgoing connections (Linux's default 32768)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    return 32768


def _worker_slot() -> int:
    """This pytest-xdist worker's number (`gw3` → 3); 0 in a serial run."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


def _port_cycle() -> Iterator[int]:
    # Each worker hands out ports from a block of its own below the kernel's ephemeral range:
    # a port handed out here and not yet bound cannot be taken by another worker's free_port
    # nor by any process's outgoing connection, which is what made ports picked by bind(0)
    # collide once tests ran in parallel ("address already in use").
    # A process a test starts (a benchmark script, say) inherits the worker's block: it begins
    # at a random place in it, so it does not walk the same ports in step with its parent.
    start = _block_start()
    offset = random.SystemRandom().randrange(SERVER_PORTS)
    while True:
        for step in range(SERVER_PORTS):
            yield start + (offset + step) % SERVER_PORTS


def _block_start() -> int:
    floor = _ephemeral_floor()
    blocks = max(1, (floor - _FIRST_PORT) // PORTS_PER_WORKER)
    return _FIRST_PORT + (_worker_slot() % blocks) * PORTS_PER_WORKER


def _range_cycle() -> Iterator[tuple[int, int]]:
    first = _block_start() + SERVER_PORTS
    count = (PORTS_PER_WORKER - SERVER_PORTS) // AGENT_PORTS
    offset = random.SystemRandom().randrange(count)
    while True:
        for step in range(count):
            low = first + ((offset + step) % count) * AGENT_PORTS
            yield low, low + AGENT_PORTS - 1


_PORTS = _port_cycle()
_RANGES = _range_cycle()


def port_range() -> tuple[int, int]:
    """An inclusive range of ports for one agent's apps (core.yml `native.port_range`) that no
    other agent of the run shares: agents on one host with one range would hand the same port
    to two apps, and an agent would take the other's process for its own ready instance."""
    return next(_RANGES)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` and that no other test worker hands out.

    Ports come from this worker's own block in turn, each checked by binding it, so two
    servers of one run get different ports and servers of parallel workers never meet.
    """
    for _ in range(PORTS_PER_WORKER):
        port = next(_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use, or closing (TIME_WAIT): the next one
            return port
    raise HarnessError(f"no free port left in this worker's block of {PORTS_PER_WORKER}")


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.02,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll `condition` until true or `timeout` seconds passed; give up early once not `alive()`."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for_port(host: str, port: int, *, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on host:port, or raise HarnessError."""

    def accepting() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    if not wait_until(accepting, timeout=timeout, interval=0.05):
        raise HarnessError(f"nothing accepted connections on {host}:{port} within {timeout} s")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM the process, SIGKILL it if it has not exited after `timeout` seconds, and reap it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def service_account(name: str) -> pwd.struct_passwd | None:
    """The system account a root-started service must run as, or None when we are not root.

    As root, servers either refuse to run (PostgreSQL) or drop to their own user (Mosquitto), so
    their files must belong to that user; as anyone else they simply run as us.
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise HarnessError(
            f"running as root but the system user {name!r} does not exist; "
            "install the Debian package that creates it with `make system-deps`"
        ) from None


def give_to(account: pwd.struct_passwd | None, *paths: Path) -> None:
    """Hand `paths` to `account` (no-op when None), so a service dropped to it can use them."""
    if account is None:
        return
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


@contextlib.contextmanager
def reachable_dir(prefix: str) -> Iterator[Path]:
    """A new directory (0711) outside pytest's 0700 tmp tree, removed afterwards.

    As root, Mosquitto drops to the `mosquitto` account, which must pass through every parent
    of its files; pytest's tmp_path parents are closed to it.
    """
    top = Path(tempfile.mkdtemp(prefix=prefix))
    top.chmod(0o711)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)
