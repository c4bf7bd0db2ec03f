"""`bench/agent.py --quick` end to end, so the agent benchmark cannot rot unnoticed.

A real cloud with its managed Mosquitto, a real `baetyl-core` and real app processes, with tiny
sizes. The figures themselves are not checked against the targets (the machine is shared), only
that every phase ran, the results file holds what docs/benchmarks.md quotes, and nothing the
benchmark started outlives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(90)]


def _bench_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention the benchmark's working directories."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(process.info["cmdline"] or [])
            text += " " + (process.info["environ"] or {}).get("BAETYL_INSTANCE_DIR", "")
        except psutil.Error:
            continue
        if marker in text:
            found.append(text)
    return found


@pytest.fixture
def results(agent_results: dict[str, Any]) -> dict[str, Any]:
    """The quick run's results (the run is shared with the report test: tests/bench/conftest.py)."""
    return agent_results


def test_memory_was_sampled_idle_with_and_without_apps(results: dict[str, Any]) -> None:
    memory = results["memory"]
    assert set(memory) == {"idle_0", "idle_2", "after_rounds", "idle_0_api_off"}
    for figures in memory.values():
        assert 10 < figures["rss_mb"] <= figures["rss_max_mb"] < 500
        assert 0 < figures["uss_mb"] <= figures["rss_mb"]
    imports = results["imports"]
    assert 0 < imports["python_mb"] < imports["libraries_mb"] < imports["agent_modules_mb"]
    assert imports["steps"][-1]["module"] == "agent.core.app"


def test_every_deploy_round_brought_every_app_up(results: dict[str, Any]) -> None:
    assert [size["apps"] for size in results["latency"]] == [1, 3]
    for size in results["latency"]:
        assert [r["apps"] for r in size["rounds"]] == [size["apps"]] * 2
        for round_ in size["rounds"]:
            assert 0 <= round_["from_desired_ms"] <= round_["from_put_ms"] < 60_000
        assert size["from_put_ms"]["p50"] <= size["from_put_ms"]["p90"]
        assert size["removal_ms"]["count"] == 2


def test_idle_cpu_and_imports_were_checked(results: dict[str, Any]) -> None:
    cpu = results["cpu"]
    assert cpu["apps"] == 2
    assert cpu["window_s"] >= 2
    assert 0 <= cpu["percent_one_core"] < 100
    assert results["agent_imports"]["kubernetes_asyncio"] is False
    assert "aiomqtt" in results["agent_imports"]["packages"]
    # The local API runs on asyncio streams: the agent never loads aiohttp or cryptography.
    assert results["agent_imports"]["aiohttp"] is False
    assert results["agent_imports"]["cryptography"] is False
    assert results["agent_imports_api_off"]["aiohttp"] is False
    assert len(results["checks"]) == 5
    assert results["provenance"]["machine"]["nproc"] >= 1


def test_nothing_the_benchmark_started_is_left_running(results: dict[str, Any]) -> None:
    assert _bench_processes(results["workdir"]) == []
    assert not Path(results["workdir"]).exists()
