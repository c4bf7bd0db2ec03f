"""Every console script of setup.cfg is installed and answers --help and --version."""

import configparser
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from agent.contracts.version import VERSION

SCRIPTS = ["baetyl-cloud", "baetylctl", "baetyl-init", "baetyl-core", "baetyl-function"]
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


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


def entry_points() -> dict[str, str]:
    """`console_scripts` of the working tree's setup.cfg: script name → `module:function`."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)


def test_setup_cfg_declares_every_script() -> None:
    assert sorted(entry_points()) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_entry_point_in_setup_cfg_runs_the_script(script: str) -> None:
    # The installed scripts may come from an older install: this runs what setup.cfg names now.
    module, function = entry_points()[script].split(":")
    code = (
        f"import sys; from {module} import {function}; "
        f"sys.argv = [{script!r}, '--version']; sys.exit({function}())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {VERSION}"


def test_every_built_in_plug_in_of_setup_cfg_is_installed() -> None:
    """The product finds even its built-in plug-ins through the installed entry points
    (docs/plugins.md): a venv installed before setup.cfg changed needs `make install`."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    section = config["options.entry_points"]
    groups = [group for group in section if group.startswith("baetyl_py.plugins.")]
    assert sorted(groups) == [
        "baetyl_py.plugins.auth",
        "baetyl_py.plugins.object_storage",
        "baetyl_py.plugins.pki_signer",
        "baetyl_py.plugins.sync_link",
    ]
    for group in groups:
        declared = {
            name.strip(): value.strip()
            for name, value in (line.split("=", 1) for line in section[group].strip().splitlines())
        }
        installed = {
            entry.name: entry.value
            for entry in metadata.entry_points(group=group)
            if entry.dist is not None and entry.dist.name == "baetyl-py"
        }
        assert installed == declared, f"{group}: run `make install`"
