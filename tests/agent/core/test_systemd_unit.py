"""deploy/systemd/baetyl-core.service: apps survive agent restarts, and systemd accepts the unit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "systemd" / "baetyl-core.service"
BINARY = "/opt/baetyl/venv/bin/baetyl-core"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values, the way systemd reads a unit (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting outside any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_stopping_the_agent_leaves_its_apps_running(unit: dict[str, dict[str, list[str]]]) -> None:
    assert unit["Service"]["KillMode"] == ["process"]


def test_the_agent_is_always_restarted_and_never_given_up_on(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    assert unit["Service"]["Restart"] == ["always"]
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert float(unit["Service"]["RestartSec"][0]) > 0


def test_the_agent_starts_after_the_network_with_its_config(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    assert "network-online.target" in unit["Unit"]["After"][0].split()
    assert "network-online.target" in unit["Unit"]["Wants"][0].split()
    assert unit["Service"]["ExecStart"] == [f"{BINARY} -c /opt/baetyl/etc/baetyl/core.yml"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_stop_timeout_leaves_room_for_the_ten_second_orderly_stop(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    assert int(unit["Service"]["TimeoutStopSec"][0]) > 10


def test_no_sandbox_setting_is_inherited_by_the_apps(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    inherited = {
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "NoNewPrivileges",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "RestrictNamespaces",
        "CapabilityBoundingSet",
        "SystemCallFilter",
        "ReadOnlyPaths",
        "MemoryDenyWriteExecute",
        "User",
        "DynamicUser",
    }
    assert inherited.isdisjoint(unit["Service"])


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that ExecStart's binary exists and is executable: point it at a stand-in.
    stand_in = tmp_path / "baetyl-core"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    assert BINARY in text
    copy = tmp_path / "baetyl-core.service"
    copy.write_text(text.replace(BINARY, str(stand_in)), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even for unknown keys and unparsable values; it only warns. Any line about
    # our unit is a mistake in it.
    ours = [line for line in result.stderr.splitlines() if "baetyl-core" in line]
    assert result.returncode == 0, result.stderr
    assert ours == [], result.stderr
