"""`bench/node_venv.py --quick` end to end: it installs the wheel as a native node does and
measures the venv it made, so the benchmark cannot rot unnoticed.

The size is not checked against the target here (it depends on the Python and pip of the
machine); that the figures add up, and that the edge ran from the measured venv, is.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)


def test_the_native_venv_was_measured_whole_and_by_distribution(
    node_venv_results: dict[str, Any],
) -> None:
    (native,) = node_venv_results["variants"]
    assert native["name"] == "native node"
    assert native["extras"] == []
    sizes = {found["name"]: found["mb"] for found in native["distributions"]}
    assert {"baetyl-py", "aiomqtt", "pip"} <= set(sizes)
    assert "tortoise-orm" not in sizes
    assert 0 < native["installer_mb"] < native["total_mb"] < 500
    # The venv is its distributions plus a few small files (activate scripts, pyvenv.cfg).
    assert sum(sizes.values()) <= native["total_mb"] <= sum(sizes.values()) + 5
    assert native["scripts_run"] == {"baetyl-core": True, "baetyl-init": True}


def test_the_checks_name_the_target_and_the_run(node_venv_results: dict[str, Any]) -> None:
    targets = [check["target"] for check in node_venv_results["checks"]]
    assert targets[0] == "native node virtualenv <= 70 MB"
    assert node_venv_results["checks"][1]["met"] is True
    assert node_venv_results["wheel"].startswith("baetyl_py-")
    assert node_venv_results["provenance"]["command"].startswith(
        ".venv/bin/python bench/node_venv.py"
    )
