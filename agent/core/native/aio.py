"""Small asyncio helpers shared by the backend's modules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def complete(awaitable: Awaitable[T]) -> T:
    """Await `awaitable` to its end even if the caller is cancelled meanwhile.

    For steps that must not be cut in half (a process being spawned must be recorded; a file
    being written by a worker thread must not race the next write). A cancellation that arrives
    meanwhile is re-raised once the step is done.
    """
    task = asyncio.ensure_future(awaitable)
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation wins, the error is not lost silently
        raise asyncio.CancelledError
    return task.result()
