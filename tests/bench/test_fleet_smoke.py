"""`bench/fleet.py --quick` end to end, so the fleet benchmark cannot rot unnoticed.

A real PostgreSQL, Mosquitto and two `baetyl-cloud serve` replicas; 20 simulated nodes. The
figures themselves are not checked (the machine is shared), only that every phase ran and the
results file holds what docs/benchmarks.md quotes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = [
    "--quick",
    "--nodes", "10,20",
    "--replicas", "1,2",
    "--interval", "1",
    "--duration", "2",
    "--delta-rounds", "3",
    "--saturation", "2",
]  # fmt: skip

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One quick run (certificates cached in a private directory), its JSON results."""
    directory = tmp_path_factory.mktemp("fleet")
    out = directory / "results.json"
    plot = directory / "plot.png"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), *QUICK, "--out", str(out),
         "--plot", str(plot)],
        env={**os.environ, "XDG_CACHE_HOME": str(directory / "cache")},
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| target | measured | met |" in completed.stdout
    assert plot.stat().st_size > 10_000
    return dict(json.loads(out.read_text(encoding="utf-8")))


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
