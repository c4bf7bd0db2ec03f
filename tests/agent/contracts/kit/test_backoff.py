"""The one backoff formula: growth from the base, the cap, and jitter that only shortens."""

from __future__ import annotations

import random

import pytest

from agent.contracts.kit import backoff


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(-1, 0.0), (0, 0.0), (1, 1.0), (2, 2.0), (4, 8.0), (9, 256.0), (10, 300.0), (99, 300.0)],
)
def test_the_delay_doubles_from_the_base_up_to_the_cap(attempt: int, expected: float) -> None:
    assert backoff.delay(attempt, base=1.0, cap=300.0) == expected


def test_a_very_long_streak_stays_at_the_cap_without_overflowing() -> None:
    assert backoff.delay(100_000, base=0.5, cap=30.0) == 30.0


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 5.0), (3, 20.0), (8, 600.0), (50, 600.0)])
def test_jitter_draws_from_below_the_ceiling(attempt: int, ceiling: float) -> None:
    """random() = 0 gives the ceiling, random() → 1 the shortest delay: (1 - jitter) of it."""
    longest = backoff.delay(attempt, base=5.0, cap=600.0, jitter=0.5, random=lambda: 0.0)
    shortest = backoff.delay(attempt, base=5.0, cap=600.0, jitter=0.5, random=lambda: 1.0)
    assert longest == ceiling
    assert shortest == pytest.approx(ceiling / 2)


def test_jittered_delays_spread_and_never_pass_the_cap() -> None:
    draw = random.Random(7).random
    delays = [backoff.delay(9, base=1.0, cap=60.0, jitter=0.2, random=draw) for _ in range(200)]
    assert all(48.0 <= d <= 60.0 for d in delays)
    assert len(set(delays)) > 100


@pytest.mark.parametrize("jitter", [-0.1, 1.5])
def test_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff.delay(1, base=1.0, cap=2.0, jitter=jitter)
