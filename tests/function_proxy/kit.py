"""Runtimes and proxies as real processes, with handler code written for each test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.harness.common import free_port
from tools.kit.procs import stop_child
from tools.kit.waiting import eventually

BIN = Path(sys.executable).parent
HANDLERS = """
import asyncio
import os
import threading
import time

_lock = threading.Lock()
_running = 0
_peak = 0


def echo(event, context):
    if isinstance(event, bytes):
        event = {"bytes": event.hex()}
    return {"event": event, "context": context, "pid": os.getpid()}


async def later(event, context):
    await asyncio.sleep(float(event or 0))
    return {"slept": event, "function": context["functionName"]}


def fail(event, context):
    raise ValueError("no good: " + str(event))


def raw(event, context):
    return b"\\x00\\x01raw"


def nothing(event, context):
    return None


def busy(event, context):
    global _running, _peak
    with _lock:
        _running += 1
        _peak = max(_peak, _running)
    time.sleep(0.3)
    with _lock:
        _running -= 1
    return "busy"


def peak(event, context):
    return _peak
"""
FUNCTIONS = ["echo", "later", "fail", "raw", "nothing", "busy", "peak"]


def write_code(
    directory: Path, handlers: str = HANDLERS, functions: list[str] | None = None
) -> Path:
    """`directory/code/index.py` and `directory/function.yml` listing `functions`; the config."""
    code = directory / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "index.py").write_text(textwrap.dedent(handlers), encoding="utf-8")
    listed = [
        {"name": name, "handler": f"index.{name}", "codedir": "code"}
        for name in (functions or FUNCTIONS)
    ]
    config = directory / "function.yml"
    config.write_text(json.dumps({"functions": listed}), encoding="utf-8")
    return config


@dataclass
class Running:
    """A process of ours listening on `port`."""

    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def started(
    argv: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Running]:
    """Start `argv`, wait until it listens on `port`; stop it after."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, env={**os.environ, **(env or {})}
        )
    running = Running(port, process, log)
    try:
        await eventually(
            lambda: _listening(port),
            limit=30,
            what=f"{argv[0]} listening on {port}",
            alive=lambda: process.returncode is None,
            detail=running.output,
        )
        yield running
    finally:
        await stop_child(process, grace=10)


def runtime(
    config: Path, port: int, log: Path, *options: str, service: str = "fn"
) -> AbstractAsyncContextManager[Running]:
    """The runtime's context manager."""
    argv = [sys.executable, "-m", "function_proxy.runtime", "--config", str(config), *options]
    return started(
        argv,
        port,
        log,
        env={"BAETYL_SERVICE_DYNAMIC_PORT": str(port), "BAETYL_SERVICE_NAME": service},
    )


def proxy(
    registry: Path, port: int, log: Path, *options: str
) -> AbstractAsyncContextManager[Running]:
    """The proxy's context manager."""
    argv = [
        str(BIN / "baetyl-function"),
        "--registry",
        str(registry),
        "--listen",
        f"127.0.0.1:{port}",
        *options,
    ]
    return started(argv, port, log)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers of one request."""
    async with session.request(method, url, data=body, headers=headers) as answer:
        return answer.status, await answer.read(), dict(answer.headers)


__all__ = ["FUNCTIONS", "Running", "call", "free_port", "proxy", "runtime", "write_code"]
