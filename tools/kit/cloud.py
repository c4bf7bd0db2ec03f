"""`baetyl-cloud serve` started from outside, and waited for until it serves.

A cloud serves once its MQTT link is up (it logs `MQTT link up` after subscribing) and its REST
API answers `/health`: only then can nodes and REST calls count on it. The server logs to a
file, not a pipe: a pipe nobody drains blocks the server once it is full.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from tools.kit.procs import KitError, stop_child, tail
from tools.kit.rest import healthy
from tools.kit.waiting import Died, WaitTimeout, eventually

BAETYL_CLOUD = Path(sys.executable).parent / "baetyl-cloud"
LINK_UP = "MQTT link up"  # cloud/mqtt/link.py logs it on every connect
START_LIMIT = 60.0
STOP_GRACE = 15.0


def serve_args(data_dir: Path, port: int, *options: str, log_level: str | None = None) -> list[str]:
    """`[--log-level L] serve --data-dir DIR --listen 127.0.0.1:PORT OPTIONS...`, the arguments
    of `baetyl-cloud` (without the program) every starter begins with."""
    head = ["--log-level", log_level] if log_level else []
    listen = f"127.0.0.1:{port}"
    return [*head, "serve", "--data-dir", str(data_dir), "--listen", listen, *options]


def link_ups(log_file: Path) -> int:
    """How many times the cloud logging to `log_file` connected to its broker."""
    try:
        return log_file.read_text(encoding="utf-8", errors="replace").count(LINK_UP)
    except FileNotFoundError:
        return 0


def admin_token(data_dir: Path) -> str:
    """The admin token of namespace `default`, written at the first start."""
    return (data_dir / "admin.token").read_text(encoding="ascii").strip()


async def wait_serving(
    url: str,
    *,
    log_file: Path,
    alive: Callable[[], bool],
    since: int = 0,
    limit: float = START_LIMIT,
    linked: bool = True,
) -> None:
    """Until the cloud logged its `since + 1`-th link up and answers /health; KitError if it
    exits or takes longer than `limit` s (the message ends with its log's tail).

    `linked=False` waits for /health only: a cloud run with `--log-level warning` does not log
    its link (the caller then waits for what it needs itself).
    """
    async with aiohttp.ClientSession() as session:

        async def serving() -> bool:
            up = not linked or await asyncio.to_thread(link_ups, log_file) > since
            return up and await healthy(session, url)

        try:
            await eventually(serving, limit=limit, what=f"the cloud at {url}", alive=alive)
        except (WaitTimeout, Died) as exc:
            log = await asyncio.to_thread(tail, log_file, 30, indent="    ")
            raise KitError(f"baetyl-cloud did not start: {exc}; {log_file}:\n{log}") from None


async def start_serve(
    argv: Sequence[str],
    *,
    url: str,
    log_file: Path,
    limit: float = START_LIMIT,
    linked: bool = True,
) -> asyncio.subprocess.Process:
    """Start `baetyl-cloud ... serve ...` (`argv` without the program) as a child and wait until
    it serves at `url`; it is stopped again if it does not."""
    since = await asyncio.to_thread(link_ups, log_file)
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            BAETYL_CLOUD,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a Ctrl-C reaches the starter only, which stops it in order
        )
    try:
        alive = lambda: process.returncode is None  # noqa: E731
        await wait_serving(
            url, log_file=log_file, alive=alive, since=since, limit=limit, linked=linked
        )
    except BaseException:
        await stop_child(process, grace=STOP_GRACE)
        raise
    return process
