"""Owned asyncio tasks: each named, its failure logged when it happens, all stopped by a deadline.

A component that runs tasks in the background (the agent's root tasks, the cloud's MQTT bridge,
the native backend's rollouts and timers) keeps them in one `Tasks`. Nothing awaits such a task
while it runs, so an error would otherwise surface only at shutdown, or never; and a task that
ignores its cancellation must not hang the shutdown, but be named in the log and left behind.
Modelled on kopf's `aiotasks` (`create_guarded_task`, `stop`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Tasks:
    """The background tasks of one component, in the order they were spawned."""

    def __init__(self, title: str, *, logger: logging.Logger) -> None:
        """`title` names the owner in log messages (`"MQTT bridge task failed"`)."""
        self._title = title
        self._log = logger
        self._running: dict[asyncio.Task[Any], None] = {}  # an ordered set

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` as a task called `name`, owned here until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._running[task] = None
        task.add_done_callback(self._done)
        return task

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The tasks still running, oldest first."""
        return iter(list(self._running))

    def __len__(self) -> int:
        return len(self._running)

    async def stop(
        self, *, grace: float, spare: Collection[asyncio.Task[Any]] = ()
    ) -> set[asyncio.Task[Any]]:
        """Cancel every task but those in `spare` and wait; see `stop`."""
        chosen = [task for task in self._running if task not in spare]
        return await stop(chosen, title=self._title, grace=grace, logger=self._log)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task, None)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio never reports it a second time
        if error is not None:
            self._log.error(
                "%s task failed",
                self._title,
                extra={"task": task.get_name(), "error": str(error) or type(error).__name__},
                exc_info=error,
            )


async def stop(
    tasks: Collection[asyncio.Task[Any]],
    *,
    title: str,
    grace: float,
    logger: logging.Logger,
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks`, newest first, and give them `grace` seconds to end.

    Returns the tasks still running then, each logged as stuck; they are left to the event loop.
    """
    if not tasks:
        return set()
    for task in reversed(list(tasks)):
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        logger.error(
            "%s task did not stop in time", title, extra={"task": task.get_name(), "grace": grace}
        )
    return stuck
