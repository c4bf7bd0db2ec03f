"""Every console script of setup.cfg is installed and answers --help and --version."""

import subprocess
import sys
from pathlib import Path

import pytest

from agent.contracts.version import VERSION

SCRIPTS = ["baetyl-cloud", "baetylctl", "baetyl-init", "baetyl-core", "baetyl-function"]
BIN = Path(sys.executable).parent


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / script, *args], check=False, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_prints_its_version(script: str) -> None:
    done = run(script, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {VERSION}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_describes_it(script: str) -> None:
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script}")
    assert "--version" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_refuses_unknown_arguments_without_a_traceback(script: str) -> None:
    done = run(script, "--no-such-flag")
    assert done.returncode == 2
    assert f"{script}: error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_comes_from_the_installed_package() -> None:
    assert VERSION != "0+unknown"
