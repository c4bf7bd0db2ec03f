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
from typing import Any, NotRequired, TypedDict, TypeVar, Unpack, overload

T = TypeVar("T")
POLL = 0.05
LIMIT = 20.0  # seconds: long enough for a loaded 2-core CI machine, short enough to fail


class WaitTimeout(TimeoutError):
    """The check did not pass in time; the message names what was awaited and the last value."""


class Died(RuntimeError):
    """What was awaited cannot happen any more: the process it depends on ended."""


class WaitOptions(TypedDict):
    """How to wait, all optional: `limit` s at most, `what` for the message, `alive()`, the
    `poll` interval and `detail()` (described at `eventually`)."""

    limit: NotRequired[float]
    what: NotRequired[str]
    alive: NotRequired[Callable[[], bool] | None]
    poll: NotRequired[float]
    detail: NotRequired[Callable[[], object] | None]


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]], **options: Unpack[WaitOptions]
) -> T: ...


@overload
async def eventually(check: Callable[[], T | None], **options: Unpack[WaitOptions]) -> T: ...


async def eventually(check: Callable[[], Any], **options: Unpack[WaitOptions]) -> Any:
    """The first truthy result of `check()`, asked every `poll` s (0.05 by default).

    Raises WaitTimeout after `limit` s (20 by default), and Died as soon as `alive()` (if
    given) is false; `detail()` (if given, sync or async) replaces the last value in the
    message with what the caller knows (a last status, a log).
    """
    limit, what = options.get("limit", LIMIT), options.get("what", "the condition")
    alive, detail = options.get("alive"), options.get("detail")
    poll = options.get("poll", POLL)
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
