"""A native node's virtualenv: the wheel without extras, installed as the install script does it.

It runs the edge — every module of `agent` and `function_proxy` imports and the edge's console
scripts answer — and holds none of the cloud's or the Kubernetes client's dependencies
(decision #100). The cloud's scripts come with the same wheel; there they name the extra to
install instead of failing with a traceback. `bench/node_venv.py` measures what the venv weighs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.contracts.version import VERSION
from tests.harness.venv import create_node_venv, distributions, node_env

pytestmark = pytest.mark.timeout(300)

CLOUD_ONLY = (
    "tortoise-orm",
    "orjson",
    "asyncpg",
    "kubernetes-asyncio",
)
EDGE_SCRIPTS = ("baetyl-core", "baetyl-init", "baetyl-function")
# baetylctl is a plain HTTP client: aiohttp, which the function proxy brought into the node's
# requirements (decision #139), is all it needs, so it runs on a node too.
CLOUD_SCRIPTS = ("baetyl-cloud",)
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
count = 0
for top in ("agent", "function_proxy"):
    package = importlib.import_module(top)
    for found in pkgutil.walk_packages(package.__path__, top + "."):
        importlib.import_module(found.name)
        count += 1
print(count, importlib.import_module("agent").__file__)
"""


@pytest.fixture(scope="module")
def node_bin(agent_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` of a venv with the wheel installed without extras."""
    return create_node_venv(tmp_path_factory.mktemp("node") / "venv", agent_wheel)


def run(node_bin: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command of the node's venv, run outside the source tree with a node's environment."""
    return subprocess.run(
        [str(node_bin / argv[0]), *argv[1:]],
        cwd=node_bin.parent,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_node_venv_holds_none_of_the_clouds_dependencies(node_bin: Path) -> None:
    installed = distributions(node_bin.parent)
    assert "baetyl-py" in installed
    assert "aiomqtt" in installed
    assert [name for name in CLOUD_ONLY if name in installed] == []
    # The function proxy's and runtime's (#139, #144).
    assert {"aiohttp", "prometheus-client", "httptools"} <= set(installed)


def test_every_edge_module_imports_from_the_node_venv(node_bin: Path) -> None:
    done = run(node_bin, "python", "-c", IMPORT_EVERY_MODULE)
    assert done.returncode == 0, done.stderr
    count, location = done.stdout.split()
    assert int(count) > 50
    assert location.startswith(str(node_bin.parent)), "imported from outside the venv"


@pytest.mark.parametrize("script", [*EDGE_SCRIPTS, "baetylctl"])
def test_the_edge_scripts_run_from_the_node_venv(node_bin: Path, script: str) -> None:
    version = run(node_bin, script, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{script} {VERSION}"
    usage = run(node_bin, script, "--help")
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith(f"usage: {script}")


@pytest.mark.parametrize("script", CLOUD_SCRIPTS)
def test_the_cloud_scripts_name_the_extra_they_need(node_bin: Path, script: str) -> None:
    done = run(node_bin, script, "--help")
    assert done.returncode == 1
    assert done.stderr.startswith(f"{script}: error: the cloud's dependencies are not installed")
    assert "tortoise-orm" in done.stderr
    assert "pip install 'baetyl-py[cloud]'" in done.stderr
    assert "Traceback" not in done.stderr
