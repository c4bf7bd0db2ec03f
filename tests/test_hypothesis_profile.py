"""The Hypothesis profile a run uses: `ci` on CI machines and in `make test`, `dev` otherwise."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import hypothesis_profile


@pytest.mark.parametrize(
    ("environ", "profile"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": ""}, "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "dev"}, "dev"),
        ({"HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ],
)
def test_the_profile_follows_ci_and_hypothesis_profile(
    environ: dict[str, str], profile: str
) -> None:
    assert hypothesis_profile(environ) == profile


def test_the_ci_profile_has_no_wall_clock_limits_and_replays_the_same_examples() -> None:
    ci = settings.get_profile("ci")
    assert ci.deadline is None
    assert ci.derandomize
    assert HealthCheck.too_slow in ci.suppress_health_check
