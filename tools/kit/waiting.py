"""Wait until a check passes: a deadline, an optional liveness check, a message saying what for.

One shape for every "wait until the node is online / the app runs / the server answers" of the
demo, the benchmarks and the end-to-end tests. The check may be sync or async; a truthy result
ends the wait and is returned.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")
POLL = 0.05


class WaitTimeout(TimeoutError):
    """The check did not pass in time; the message names what was awaited and the last value."""


class Died(RuntimeError):
    """What was awaited cannot happen any more: the process it depends on ended."""


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    limit: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    poll: float = POLL,
    detail: Callable[[], object] | None = None,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    limit: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    poll: float = POLL,
    detail: Callable[[], object] | None = None,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    limit: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    poll: float = POLL,
    detail: Callable[[], object] | None = None,
) -> Any:
    """The first truthy result of `check()`, asked every `poll` s.

    Raises WaitTimeout after `limit` s, and Died as soon as `alive()` (if given) is false;
    `detail()` (if given, sync or async) replaces the last value in the message with what the
    caller knows (a last status, a log).
    """
    deadline = time.monotonic() + limit
    last: object = None
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        last = result
        if result:
            return result
        if alive is not None and not alive():
            raise Died(f"gave up waiting for {what}: the process ended")
        if time.monotonic() >= deadline:
            more = f"; last: {last!r}"
            if detail is not None:
                said = detail()
                more = f"; {await said if inspect.isawaitable(said) else said}"
            raise WaitTimeout(f"timed out after {limit:g} s waiting for {what}{more}")
        await asyncio.sleep(poll)
