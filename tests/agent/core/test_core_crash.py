"""A crash of one of baetyl-core's root tasks ends the process with a non-zero status.

Our systemd unit restarts the agent whatever its status (`Restart=always`), but a supervisor that
restarts on failure only (a container's `on-failure` policy, a script) and the operator reading
the status need it: before, a root task that died (here the local API, whose port is taken) ended
the process with status 0.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml

from tests.agent.core.agent_kit import spawn_core, write_core_config
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(60)]


async def test_a_root_task_that_dies_makes_the_agent_exit_non_zero(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    config = write_core_config(
        tmp_path / "node", "default.crashing", mosquitto=mosquitto, pki=pki, api=True
    )
    host, port = yaml.safe_load(config.read_text())["api"]["listen"].rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        log_file = tmp_path / "core.log"
        process = await spawn_core(config, log_file)
        async with asyncio.timeout(30):
            code = await process.wait()
    log = log_file.read_text(errors="replace")
    assert code == 1, log[-3000:]
    assert "local-api" in log
