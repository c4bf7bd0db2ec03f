"""The controller's side of the simulator processes: spawn, command, collect, stop.

Workers run in their own sessions, so a Ctrl-C reaches only the controller, which then stops
them in order (`exit`, then SIGTERM, then SIGKILL) instead of leaving half-closed connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCH_DIR.parent
STOP_TIMEOUT = 5.0
_LINE_LIMIT = 2**26  # measurement answers carry every latency sample

Reply = dict[str, Any]
OnEvent = Callable[[int, Reply], None]


class WorkerError(RuntimeError):
    """A worker answered a command with an error, or died."""


class Worker:
    """One simulator process and the commands waiting for its answers."""

    def __init__(self, index: int, process: asyncio.subprocess.Process, on_event: OnEvent) -> None:
        self.index = index
        self.process = process
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._reader = asyncio.create_task(self._read(), name=f"fleet-worker-{index}")

    @property
    def pid(self) -> int:
        """The process id (for CPU accounting)."""
        return self.process.pid

    async def call(self, cmd: str, **args: Any) -> Reply:
        """Send one command and wait for its answer."""
        assert self.process.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        line = json.dumps({"id": ident, "cmd": cmd, **args}) + "\n"
        self.process.stdin.write(line.encode())
        await self.process.stdin.drain()
        reply = await future
        if not reply.pop("ok"):
            raise WorkerError(f"worker {self.index}: {cmd} failed: {reply['error']}")
        return reply

    async def stop(self) -> None:
        """Ask it to exit, then SIGTERM, then SIGKILL; always reaped."""
        process = self.process
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                process.stdin.write(b'{"id": 0, "cmd": "exit"}\n')
                process.stdin.close()
        await stop_process(process, grace=STOP_TIMEOUT)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                message = json.loads(line)
                ident = message.pop("id", None)
                future = self._waiting.pop(ident, None) if ident is not None else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif ident is None:
                    self._on_event(self.index, message)
        finally:
            error = WorkerError(f"worker {self.index} exited (code {self.process.returncode})")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(error)
            self._waiting.clear()


async def stop_process(process: asyncio.subprocess.Process, *, grace: float) -> None:
    """Wait `grace` seconds for an exit already asked for, then SIGTERM, then SIGKILL; reap."""
    for escalate in (None, process.terminate, process.kill):
        if escalate is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                escalate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
            return


class WorkerPool:
    """Every simulator process; nodes are dealt to them round robin."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [worker.pid for worker in self.workers]

    def deal(self, nids: Sequence[str]) -> list[list[str]]:
        """Split nodes over the workers; node i goes to worker i mod count."""
        count = len(self.workers)
        return [list(nids[index::count]) for index in range(count)]

    async def each(self, cmd: str, per_worker: Sequence[dict[str, Any]]) -> list[Reply]:
        """The same command to every worker with its own arguments; all answers."""
        return list(
            await asyncio.gather(
                *(
                    worker.call(cmd, **args)
                    for worker, args in zip(self.workers, per_worker, strict=True)
                )
            )
        )

    async def all(self, cmd: str, **args: Any) -> list[Reply]:
        """The same command and arguments to every worker."""
        return await self.each(cmd, [args] * len(self.workers))


@contextlib.asynccontextmanager
async def worker_pool(
    count: int, settings: dict[str, Any], on_event: OnEvent
) -> AsyncIterator[WorkerPool]:
    """Start `count` worker processes and stop all of them on the way out, whatever happens."""
    workers: list[Worker] = []
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH_DIR)])}
    try:
        for index in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fleetsim.worker",
                json.dumps({**settings, "worker": index, "seed": settings["seed"] + index}),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=environment,
                cwd=ROOT,
                limit=_LINE_LIMIT,
                start_new_session=True,
            )
            workers.append(Worker(index, process, on_event))
        yield WorkerPool(workers)
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)
