"""Fixtures of the `baetylctl` tests: the real cloud of the API tests and a runner of the real
`baetylctl` console script as a child process, with an environment the test controls.

The server runs in the test's event loop, so the child is awaited with
`asyncio.create_subprocess_exec` (a blocking `subprocess.run` would starve the server).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cloud.api.conftest import cloud  # noqa: F401
from tests.harness.cloud import CloudServer

BAETYLCTL = Path(sys.executable).parent / "baetylctl"
RUN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Run:
    """A finished `baetylctl` run: exit status and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    def yaml(self) -> Any:
        """stdout parsed as YAML (one document)."""
        return yaml.safe_load(self.out)

    def table(self) -> list[list[str]]:
        """stdout as table rows split on runs of spaces (cells hold no spaces in these tests)."""
        return [line.split() for line in self.out.splitlines()]


@dataclass
class Ctl:
    """Runs `baetylctl` with a clean environment: no user config, no inherited BAETYL_*."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        """Where this environment's `baetylctl` looks for its config file."""
        return self.home / "xdg" / "baetyl" / "config.yaml"

    def environment(self, extra: dict[str, str] | None) -> dict[str, str]:
        """The child's environment."""
        keep = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("BAETYL_") and key not in {"HOME", "XDG_CONFIG_HOME"}
        }
        keep.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / "xdg"))
        keep.update(self.env)
        keep.update(extra or {})
        return keep

    async def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Run:
        """Run `baetylctl ARGS...`, feeding `stdin`; returns once the process has exited."""
        process = await asyncio.create_subprocess_exec(
            BAETYLCTL,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.environment(env),
        )
        data = stdin.encode() if stdin is not None else b""
        out, err = await asyncio.wait_for(process.communicate(data), RUN_TIMEOUT)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str | None = None) -> Run:
        """Like calling, but the run must succeed."""
        done = await self(*args, stdin=stdin)
        assert done.code == 0, f"baetylctl {' '.join(args)} -> {done.code}: {done.err}"
        return done


@pytest.fixture
def offline_ctl(tmp_path: Path) -> Ctl:
    """`baetylctl` with no server, URL or token configured."""
    home = tmp_path / "home"
    home.mkdir()
    return Ctl(home)


@pytest.fixture
def ctl(offline_ctl: Ctl, cloud: CloudServer) -> Ctl:  # noqa: F811 - the re-exported fixture
    """`baetylctl` pointed at the test's cloud with its admin token, through the environment."""
    offline_ctl.env.update(BAETYL_URL=cloud.url, BAETYL_TOKEN=cloud.admin_token)
    return offline_ctl
