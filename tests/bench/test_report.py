"""`bench/report.py` and `bench/run_all.py`: the benchmark report is built from real results.

The results are those of the quick benchmark runs of this suite (tests/bench/conftest.py), so
the report is rendered from what the scripts really write, not from a hand-made sample: a
renamed key in a script breaks this test, not `make bench` half an hour in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
Json = dict[str, Any]
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.timeout(300)]


def _report(results: Path, doc: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--results", str(results), "--doc", str(doc)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def results_dir(
    tmp_path: Path,
    agent_results: Json,
    fleet_results: Json,
    push_results: Json,
    rest_results: Json,
    shadow_results: Json,
    node_venv_results: Json,
    function_proxy_results: Json,
    agent_upgrade_results: Json,
) -> Path:
    """A results directory laid out as `make bench` leaves bench/results/."""
    directory = tmp_path / "results"
    directory.mkdir()
    for name, value in (
        ("agent.json", agent_results),
        ("fleet.json", fleet_results),
        ("push_vs_poll.json", push_results),
        ("cloud_rest-sqlite.json", rest_results),
        ("shadow_apply.json", shadow_results),
        ("node_venv.json", node_venv_results),
        ("function_proxy.json", function_proxy_results),
        ("agent_upgrade.json", agent_upgrade_results),
    ):
        (directory / name).write_text(json.dumps(value), encoding="utf-8")
    return directory


def test_the_report_has_every_section_figure_and_measured_figure(
    results_dir: Path, tmp_path: Path, push_results: Json, rest_results: Json
) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    completed = _report(results_dir, doc)
    assert completed.returncode == 0, completed.stderr
    text = doc.read_text(encoding="utf-8")
    for heading in (
        "## Targets",
        "## Desired → running: push against polling",
        "## Cloud REST API at fleet scale",
        "## Fleet: report ingest",
        "## Fleet: REST change → delta",
        "## Agent footprint and deploy time",
        "## Shadow update cost",
        "## A node's virtualenv",
        "## Function proxy (`bench/function_proxy.py`)",
        "## Agent upgrade (`bench/agent_upgrade.py`)",
    ):
        assert heading in text
    lines = text.splitlines()
    images = [line.split("](")[1].rstrip(")") for line in lines if line.startswith("![")]
    assert len(images) == 6
    for image in images:
        data = (doc.parent / image).read_bytes()
        assert data.startswith(PNG)
        assert len(data) > 10_000
    # Every figure comes with the command that produced it and the machine it ran on: the
    # deploy figure's two panels come from two benchmarks, so it names both.
    assert text.count("*Command:* `.venv/bin/python bench/") == 10
    assert "Right panel (one desired change carrying N apps" in text
    assert push_results["provenance"]["machine"]["summary"] in text
    # The measured figures are those of the results files.
    push = next(m for m in push_results["models"] if m["model"] == "push")
    assert "| push | 4 | " in text
    assert f"**{push['running_ms']['p50']:.1f}**" in text or (
        f"**{push['running_ms']['p50']:,.0f}**".replace(",", " ") in text
    )
    list_p99 = rest_results["summary_ms"]["list"]["p99"]
    assert f"{list_p99:.1f} ms" in text
    # One database only, and no Kubernetes run (it needs the cluster: tests/bench/
    # test_kube_bench_smoke.py): those are named as missing, not invented.
    assert (
        "Not measured in this report: `kube.json`, `platforms.json`, `cloud_rest-postgres.json`."
        in text
    )


def test_the_committed_results_render_every_section_with_the_kube_one(tmp_path: Path) -> None:
    """bench/results/ as committed (what docs/benchmarks.md is made from) renders whole."""
    doc = tmp_path / "docs" / "benchmarks.md"
    completed = _report(BENCH / "results", doc)
    assert completed.returncode == 0, completed.stderr
    text = doc.read_text(encoding="utf-8")
    assert "## Kubernetes backend (`bench/kube.py`)" in text
    assert "Not measured in this report" not in text
    assert "bench-kube-latency.png" in text
    assert (doc.parent / "img" / "bench-kube-latency.png").read_bytes().startswith(PNG)


def test_a_broken_results_file_is_named_and_nothing_is_written(
    results_dir: Path, tmp_path: Path
) -> None:
    (results_dir / "agent.json").write_text("{not json", encoding="utf-8")
    doc = tmp_path / "benchmarks.md"
    doc.write_text("previous\n", encoding="utf-8")
    completed = _report(results_dir, doc)
    assert completed.returncode == 1
    assert "agent.json" in completed.stderr
    assert doc.read_text(encoding="utf-8") == "previous\n"


def test_a_results_file_missing_a_key_is_an_error_not_a_traceback(
    results_dir: Path, tmp_path: Path
) -> None:
    agent = json.loads((results_dir / "agent.json").read_text(encoding="utf-8"))
    del agent["memory"]
    (results_dir / "agent.json").write_text(json.dumps(agent), encoding="utf-8")
    completed = _report(results_dir, tmp_path / "benchmarks.md")
    assert completed.returncode == 1
    assert "rerun its benchmark" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "benchmarks.md").exists()


def test_no_results_at_all_says_to_run_the_benchmarks(tmp_path: Path) -> None:
    completed = _report(tmp_path, tmp_path / "benchmarks.md")
    assert completed.returncode == 1
    assert "make bench" in completed.stderr


def test_run_all_measures_and_reports_the_chosen_benchmarks(tmp_path: Path) -> None:
    doc = tmp_path / "out.md"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "shadow_apply",
         "--results", str(tmp_path), "--doc", str(doc)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "[1/1] shadow_apply done" in completed.stderr
    assert json.loads((tmp_path / "shadow_apply.json").read_text())["rounds"] == 20
    assert "## Shadow update cost" in doc.read_text(encoding="utf-8")


def test_run_all_refuses_an_unknown_benchmark(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "fleet,bogus",
         "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "unknown benchmark(s) bogus" in completed.stderr
    assert list(tmp_path.iterdir()) == []
