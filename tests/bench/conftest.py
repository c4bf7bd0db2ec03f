"""One quick run of each benchmark, shared by its smoke test and by the report test.

Each fixture runs a bench script as `make bench` does (a subprocess writing `--out FILE.json`)
with tiny sizes, checks that it exited 0 and printed its summary, and returns the results. They
are session-scoped: the report test (`test_report.py`) renders docs from the same runs the smoke
tests check, so every benchmark runs once per suite.
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
BENCH = ROOT / "bench"
Json = dict[str, Any]

AGENT_QUICK = [
    "--quick",
    "--idle-apps", "2",
    "--sizes", "1,3",
    "--rounds", "2",
    "--settle", "1",
    "--samples", "2",
    "--cpu-window", "2",
]  # fmt: skip
FLEET_QUICK = [
    "--quick",
    "--nodes", "10,20",
    "--replicas", "1,2",
    "--interval", "1",
    "--duration", "2",
    "--delta-rounds", "3",
    "--saturation", "2",
]  # fmt: skip
PUSH_QUICK = [
    "--quick",
    "--push-samples", "4",
    "--poll-samples", "4",
    "--report-interval", "2",
    "--engine-interval", "1",
]  # fmt: skip
REST_QUICK = ["--db", "sqlite", "--nodes", "30", "--apps", "6", "--rounds", "2"]
SHADOW_QUICK = ["--rounds", "5"]


def run_bench(
    script: str, args: list[str], out: Path, *, timeout: float, env: dict[str, str] | None = None
) -> tuple[Json, subprocess.CompletedProcess[str]]:
    """Run bench/<script> with `args --out out`; its results and the finished process."""
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return dict(json.loads(out.read_text(encoding="utf-8"))), completed


@pytest.fixture(scope="session")
def agent_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/agent.py`, quick."""
    out = tmp_path_factory.mktemp("agent-bench") / "agent.json"
    results, completed = run_bench("agent.py", AGENT_QUICK, out, timeout=80)
    assert "| target | measured | met |" in completed.stdout
    assert "idle with 0 apps" in completed.stderr
    return results


@pytest.fixture(scope="session")
def fleet_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/fleet.py`, quick (certificates cached in a private directory), with its plot."""
    directory = tmp_path_factory.mktemp("fleet")
    plot = directory / "plot.png"
    env = {**os.environ, "XDG_CACHE_HOME": str(directory / "cache")}
    results, completed = run_bench(
        "fleet.py", [*FLEET_QUICK, "--plot", str(plot)], directory / "fleet.json",
        timeout=80, env=env,
    )  # fmt: skip
    assert "| target | measured | met |" in completed.stdout
    assert plot.stat().st_size > 10_000
    assert (directory / "plot-delta.png").stat().st_size > 10_000
    return results


@pytest.fixture(scope="session")
def push_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/push_vs_poll.py`, quick: 4 samples each, a 2 s report and 1 s engine cycle."""
    out = tmp_path_factory.mktemp("push-vs-poll") / "push_vs_poll.json"
    results, completed = run_bench("push_vs_poll.py", PUSH_QUICK, out, timeout=80)
    assert "| model | samples |" in completed.stdout
    return results


@pytest.fixture(scope="session")
def rest_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/cloud_rest.py` on SQLite with 30 nodes."""
    out = tmp_path_factory.mktemp("cloud-rest") / "cloud_rest-sqlite.json"
    results, _ = run_bench("cloud_rest.py", REST_QUICK, out, timeout=60)
    return results


@pytest.fixture(scope="session")
def shadow_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/shadow_apply.py` with 5 rounds per case."""
    out = tmp_path_factory.mktemp("shadow-apply") / "shadow_apply.json"
    results, _ = run_bench("shadow_apply.py", SHADOW_QUICK, out, timeout=60)
    return results


@pytest.fixture(scope="session")
def node_venv_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/node_venv.py --quick`: the native node's venv only."""
    out = tmp_path_factory.mktemp("node-venv") / "node_venv.json"
    results, completed = run_bench("node_venv.py", ["--quick"], out, timeout=240)
    assert "| target | measured | met |" in completed.stdout
    return results


@pytest.fixture(scope="session")
def function_proxy_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/function_proxy.py`, quick."""
    out = tmp_path_factory.mktemp("function-proxy-bench") / "function_proxy.json"
    results, completed = run_bench(
        "function_proxy.py", ["--quick", "--requests", "50", "--clients", "4"], out, timeout=120
    )
    assert "## Function proxy (`bench/function_proxy.py`)" in completed.stdout
    return results


@pytest.fixture(scope="session")
def agent_upgrade_results(tmp_path_factory: pytest.TempPathFactory) -> Json:
    """`bench/agent_upgrade.py --quick`: 2 upgrades, 1 back, 1 rollback of each broken kind."""
    out = tmp_path_factory.mktemp("agent-upgrade-bench") / "agent_upgrade.json"
    results, completed = run_bench("agent_upgrade.py", ["--quick"], out, timeout=240)
    assert "## Agent upgrade (`bench/agent_upgrade.py`)" in completed.stdout
    return results
