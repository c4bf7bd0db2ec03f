"""`baetyl-core` as a user runs it: clear errors for bad configs, `--check`, SIGTERM."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.agent.core.agent_kit import CORE_BIN, write_core_config
from tests.harness.common import free_port
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CORE_BIN), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_prints_the_node_id(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    config = write_core_config(tmp_path, "default.edge-1", mosquitto=mosquitto, pki=pki)
    done = run("-c", str(config), "--check")
    assert done.returncode == 0, done.stderr
    assert "node default.edge-1" in done.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cloud: {mqtt: 'mqtt://x:1883'}\n", "cloud.mqtt"),
        ("cloud: {mqtt: 'mqtts://x'}\nsync: {report_interval: -1}\n", "sync.report_interval"),
        ("cloud: {mqtt: 'mqtts://x'}\nengine: {intervall: 3}\n", "engine.intervall"),
        ("cloud: [\n", "line"),
        ("{}\n", "cloud"),
    ],
)
def test_a_bad_config_is_refused_with_its_key_path(
    tmp_path: Path, text: str, fragment: str
) -> None:
    config = tmp_path / "core.yml"
    config.write_text(text)
    done = run("-c", str(config))
    assert done.returncode == 2
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_the_kube_backend_with_a_missing_kubeconfig_is_refused_with_the_key(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    config = write_core_config(tmp_path, "default.edge-3", mosquitto=mosquitto, pki=pki)
    text = config.read_text().replace("engine:", "engine:\n  backend: kube")
    config.write_text(text + "kube:\n  kubeconfig: missing/kubeconfig\n")
    done = run("-c", str(config), "--check")
    assert done.returncode == 2
    assert f"kube.kubeconfig: {tmp_path / 'missing' / 'kubeconfig'} does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    done = run("-c", str(tmp_path / "nope.yml"))
    assert done.returncode == 2
    assert "nope.yml" in done.stderr
    assert "Traceback" not in done.stderr


async def test_sigterm_stops_it_cleanly_even_with_no_broker(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    # A port where nothing listens: the agent starts offline and keeps retrying.
    config = write_core_config(
        tmp_path, "default.edge-2", mosquitto=mosquitto, pki=pki, mqtt_port=free_port()
    )
    log = tmp_path / "core.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(CORE_BIN), "-c", str(config), stdout=out, stderr=out
        )
    async with asyncio.timeout(20):
        while "baetyl-core started" not in log.read_text():
            await asyncio.sleep(0.05)
    process.terminate()
    async with asyncio.timeout(15):
        code = await process.wait()
    assert code == 0, log.read_text()[-2000:]
    assert "baetyl-core stopped" in log.read_text()
