"""`bench/kube.py --quick` end to end on a cluster of its own (the session's is paused while it
runs), so the Kubernetes benchmark cannot rot unnoticed. Its figures are not checked against the
targets here; that every round applied, readied and removed every app, and that nothing is left
running, is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.conftest import run_bench
from tests.harness.kube import KubeCluster
from tools.kube import host

pytestmark = [pytest.mark.kube, pytest.mark.timeout(600)]
KUBE_QUICK = [
    "--quick",
    "--sizes", "1,2",
    "--rounds", "1",
    "--idle-apps", "2",
    "--settle", "1",
    "--samples", "1",
    "--cpu-window", "1",
]  # fmt: skip


async def test_the_kube_benchmark_runs_every_phase_and_cleans_up(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    async with kube_cluster.paused():
        results, completed = run_bench("kube.py", KUBE_QUICK, tmp_path / "kube.json", timeout=540)
        assert not host.pod_processes(), "the benchmark's pods outlived its cluster"
    assert "## Kubernetes backend (`bench/kube.py`)" in completed.stdout
    assert [size["apps"] for size in results["latency"]] == [1, 2]
    for size in results["latency"]:
        (only,) = size["rounds"]
        assert 0 < only["applied_ms"] <= only["ready_ms"]
        assert size["removal_ms"]["count"] == 1
    idle = results["idle"]
    assert idle["apps"] == 2
    assert idle["idle_n"]["rss_mb"] > 10
    assert results["checks"][0]["target"].startswith("agent RSS in kube mode")
    assert results["kubernetes"].startswith("v1.")
