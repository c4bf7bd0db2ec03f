"""`bench/push_vs_poll.py --quick` end to end: push against a polling agent on a short cycle.

A real cloud with its managed Mosquitto and two real `baetyl-core` processes, one with the
defaults and one with `sync.mode: poll` and `engine.mode: tick` (a 2 s report and a 1 s engine
cycle instead of Baetyl's 20 s and 10 s). The absolute figures are not checked (the machine is
shared); that the polling agent really waits for its cycle is: it must be slower than push, and
no faster than the cycle allows.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(120)]


def test_both_models_brought_every_app_up(push_results: dict[str, Any]) -> None:
    models = {model["model"]: model for model in push_results["models"]}
    assert set(models) == {"push", "poll"}
    for model in models.values():
        assert [s["app"] for s in model["samples"]] == [
            f"{model['model']}-{index:03d}" for index in range(4)
        ]
        for sample in model["samples"]:
            assert 0 < sample["rest_ms"] <= sample["running_ms"]
            assert sample["adopted_ms"] <= sample["running_ms"]
        assert model["running_ms"]["count"] == 4
    assert models["poll"]["core_yml"] == {
        "sync": {"mode": "poll", "report_interval": 2.0},
        "engine": {"mode": "tick", "interval": 1.0},
    }
    assert models["push"]["core_yml"] == {}


def test_the_polling_agent_waits_for_its_cycle_and_push_does_not(
    push_results: dict[str, Any],
) -> None:
    models = {model["model"]: model for model in push_results["models"]}
    push, poll = models["push"]["running_ms"], models["poll"]["running_ms"]
    assert poll["p50"] > push["p50"]
    # A delta is pushed to both agents; had the polling one followed it, its apps would start
    # within milliseconds of the request, like push. Four samples at random phases of a 2 s
    # poll all landing in its first 100 ms is a chance of 1 in 160,000.
    assert poll["max"] > 100
    # Nothing waits longer than one poll plus one tick (3 s) and slack for a loaded machine.
    assert poll["max"] < push_results["expected_poll_ms"]["worst"] + 5_000


def test_results_carry_the_plan_the_checks_and_where_they_were_measured(
    push_results: dict[str, Any],
) -> None:
    assert push_results["plan"]["report_interval"] == 2.0
    assert push_results["expected_poll_ms"] == {
        "aligned_mean": 1000.0,
        "aligned_max": 2000.0,
        "independent_mean": 1500.0,
        "worst": 3000.0,
    }
    assert [check["met"] for check in push_results["checks"]][2] is True  # push is faster
    origin = push_results["provenance"]
    assert origin["command"].startswith(".venv/bin/python bench/push_vs_poll.py --quick")
    assert origin["machine"]["nproc"] >= 1
