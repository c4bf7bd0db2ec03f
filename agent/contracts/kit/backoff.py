"""Capped exponential backoff, optionally jittered: the one formula behind every retry delay.

Reconnects, certificate renewal, broker restarts, app restarts and failed deployments all wait
`base * 2**(attempt-1)` seconds, at most `cap`. Jitter spreads clients that failed together (a
broker restart drops every node at once) so they do not come back in lockstep; it only shortens a
delay, so the cap stays a true upper bound.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import Final

_MAX_EXPONENT: Final = 64
"""2**64 times any sane base is beyond any cap; a larger power would overflow a float."""


def delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.0,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry; 0 or less: none).

    The ceiling is `min(base * 2**(attempt-1), cap)`; with `jitter` j in [0, 1] the delay is
    drawn from `[ceiling * (1 - j), ceiling]` using `random()` (a number in [0, 1)), which tests
    replace to reach both ends.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], got {jitter}")
    if attempt <= 0:
        return 0.0
    ceiling = min(base * 2.0 ** min(attempt - 1, _MAX_EXPONENT), cap)
    if not jitter:
        return ceiling
    return ceiling * (1.0 - jitter * random())
