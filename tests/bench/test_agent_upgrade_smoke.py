"""`bench/agent_upgrade.py --quick` end to end, so the upgrade benchmark cannot rot unnoticed.

A real cloud serving wheels of the working tree and a node installed by its install script: two
upgrades to new versions, one back to the version before, a crashing and a silent version rolled
back. The figures are not checked against targets (the machine is shared), only that every
phase the document quotes was timed and adds up, that the app kept its pid, and that nothing the
benchmark started outlives it.
"""

from __future__ import annotations

import psutil
import pytest

from tests.bench.conftest import Json

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(300)]

NEW_PHASES = [
    "delivered", "download", "copy", "install", "dependencies", "checks",
    "stop", "start", "connect", "confirm", "report",
]  # fmt: skip


def _adds_up(result: Json) -> None:
    """The phases of a round are consecutive: they sum to its total (each rounded to 0.1 ms)."""
    phases = result["phases_ms"]
    assert all(ms >= 0 for ms in phases.values()), phases
    assert abs(sum(phases.values()) - result["total_ms"]) <= 0.1 * len(phases)


def test_every_upgrade_confirmed_in_place_with_every_phase_timed(
    agent_upgrade_results: Json,
) -> None:
    upgrades = agent_upgrade_results["upgrades"]
    assert [(u["version"], u["kind"], u["reused"]) for u in upgrades] == [
        ("1.0.1", "new", False),
        ("1.0.2", "new", False),
        ("1.0.1", "previous", True),
    ]
    for upgrade in upgrades:
        assert upgrade["current"] == upgrade["version"]
        assert upgrade["app_kept"]
        assert upgrade["agent_kept"]
        assert 0 < upgrade["preparing_ms"] < upgrade["total_ms"] < 120_000
        assert 0 < upgrade["offline_ms"] <= upgrade["switch_confirm_ms"]
        _adds_up(upgrade)
    assert list(upgrades[0]["phases_ms"]) == NEW_PHASES
    # Back to the version before: its virtualenv is there, only its checks run again.
    assert list(upgrades[2]["phases_ms"]) == [
        name for name in NEW_PHASES if name not in ("download", "copy", "install", "dependencies")
    ]
    summary = agent_upgrade_results["summary"]
    assert summary["new"]["rounds"] == 2
    assert summary["previous"]["rounds"] == 1
    assert summary["new"]["total_ms"]["min"] <= summary["new"]["total_ms"]["p50"]


def test_each_broken_version_was_rolled_back_by_the_guard(agent_upgrade_results: Json) -> None:
    crashing, silent = agent_upgrade_results["rollbacks"]
    timeout_ms = agent_upgrade_results["plan"]["confirm_timeout"] * 1000
    assert (crashing["version"], crashing["kind"]) == ("1.1.1", "crashing")
    assert "exited before" in crashing["message"]
    assert crashing["phases_ms"]["detected"] < timeout_ms  # at once, not at the deadline
    assert (silent["version"], silent["kind"]) == ("1.2.1", "silent")
    assert "did not connect and report" in silent["message"]
    assert silent["past_deadline_ms"] >= 0  # the guard waited for the deadline
    for rollback in (crashing, silent):
        assert rollback["app_kept"]
        assert rollback["back_on_previous"]
        assert list(rollback["phases_ms"]) == [
            "preparing", "detected", "restarted", "connected", "reported",
        ]  # fmt: skip
        _adds_up(rollback)


def test_disk_checks_and_cleanup(agent_upgrade_results: Json) -> None:
    disk = agent_upgrade_results["disk"]
    assert disk["versions_kept"] == ["1.0.1", "1.0.2"]
    assert 10 < disk["version_mb"] < 500
    # Two whole copies: a version's virtualenv shares no file with another.
    assert disk["versions_dir_mb"] >= 1.9 * disk["version_mb"]
    assert [check["met"] for check in agent_upgrade_results["checks"]] == [True, True, True]
    assert agent_upgrade_results["app_kept_whole_run"] is True
    # Agents, the guard and the app (by the instance directory in its environment).
    workdir = agent_upgrade_results["workdir"]
    left = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        text = " ".join(process.info["cmdline"] or [])
        text += " " + (process.info["environ"] or {}).get("BAETYL_INSTANCE_DIR", "")
        if workdir in text:
            left.append(text)
    assert left == []
