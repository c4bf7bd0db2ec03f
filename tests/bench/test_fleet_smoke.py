"""`bench/fleet.py --quick` end to end, so the fleet benchmark cannot rot unnoticed.

A real PostgreSQL, Mosquitto and two `baetyl-cloud serve` replicas; 20 simulated nodes. The
figures themselves are not checked (the machine is shared), only that every phase ran and the
results file holds what docs/benchmarks.md quotes.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.timeout(90)]


@pytest.fixture
def results(fleet_results: dict[str, Any]) -> dict[str, Any]:
    """The quick run's results (the run is shared with the report test: tests/bench/conftest.py)."""
    return fleet_results


def test_every_replica_count_ran_every_phase(results: dict[str, Any]) -> None:
    assert [run["replicas"] for run in results["runs"]] == [1, 2]
    for run in results["runs"]:
        assert [stage["nodes"] for stage in run["ingest"]] == [10, 20]
        assert run["delta"]["nodes"] == 10
        assert run["saturation"]["achieved_per_s"] > 0


def test_periodic_reports_are_all_answered(results: dict[str, Any]) -> None:
    for run in results["runs"]:
        for stage in run["ingest"]:
            assert stage["sent"] > 0
            assert stage["lost"] == 0
            assert stage["rejected"] == {}
            assert stage["latency_ms"]["count"] == stage["accepted"]
            assert 0 < stage["latency_ms"]["p50"] <= stage["latency_ms"]["p99"]


def test_every_delta_round_reached_every_matched_node(results: dict[str, Any]) -> None:
    for run in results["runs"]:
        delta = run["delta"]
        assert [r["op"] for r in delta["rounds"]] == ["create", "update", "delete"]
        assert delta["missing"] == 0
        assert delta["latency_ms"]["count"] == 3 * 10


def test_results_carry_the_machine_the_cpu_split_and_the_checks(results: dict[str, Any]) -> None:
    assert results["machine"]["nproc"] >= 1
    saturation = results["runs"][0]["saturation"]["cpu_cores"]
    assert {"broker", "postgres", "simulator", "cloud r1", "machine"} <= set(saturation)
    assert results["scale_ratio"] is not None
    assert len(results["checks"]) == 5
