"""The sync link plug-in point: `sync.link` in core.yml chooses the link by its entry-point name.

The built-in `mqtt` is found like any plug-in (every other agent test runs it that way); the
test plug-in `test-counting` (tests/plugins/baetyl_test_plugins) wraps it and counts what it
publishes, so a test can see that the agent's messages went through the link it chose.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from baetyl_test_plugins.link import CountingLink

from agent.contracts.kit.plugins import PluginError
from agent.contracts.messages import CommandRequest
from agent.contracts.topics import Channel
from agent.core.app import Core
from agent.core.config import load_config
from agent.core.store import LocalStore
from agent.core.sync.link import AgentLink, LinkSettings
from agent.core.sync.shadow_sync import ShadowSync
from tests.agent.core.agent_kit import CORE_BIN, write_core_config
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.waiting import eventually


def with_link(config: Path, link: str) -> Path:
    """The core.yml at `config` with `sync.link: <link>`."""
    text = yaml.safe_load(config.read_text())
    text["sync"]["link"] = link
    config.write_text(yaml.safe_dump(text))
    return config


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CORE_BIN), "-c", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unknown_link_is_refused_at_start_with_the_installed_ones(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    config = write_core_config(tmp_path, "default.edge-1", mosquitto=mosquitto, pki=pki)
    done = check(with_link(config, "mqt"))
    assert done.returncode == 2
    assert (
        f"{config}: sync.link: no sync link plug-in named 'mqt' is installed; did you mean "
        "'mqtt'? (installed: mqtt, test-counting; entry-point group "
        "baetyl_py.plugins.sync_link, docs/plugins.md)"
    ) in done.stderr
    assert "Traceback" not in done.stderr
    assert check(with_link(config, "test-counting")).returncode == 0


def test_the_agent_runs_the_link_core_yml_names(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    config = write_core_config(tmp_path, "default.edge-1", mosquitto=mosquitto, pki=pki)
    assert type(Core(load_config(config)).sync.link) is AgentLink
    chosen = Core(load_config(with_link(config, "test-counting")))
    assert type(chosen.sync.link) is CountingLink


async def test_the_messages_go_through_the_chosen_link(
    cloud: CloudServer, mosquitto: MosquittoBroker, pki: HarnessPKI, tmp_path: Path
) -> None:
    name = f"n-{uuid.uuid4().hex[:10]}"
    await cloud.ok("POST", "/v1/nodes", {"name": name})
    nid = f"default.{name}"
    cert = pki.node(nid)
    store = LocalStore(tmp_path / "store")
    await store.open()

    async def reported() -> dict[str, Any]:
        return {"nodeprops": {"link": "test-counting"}}

    async def commands(request: CommandRequest) -> Any:
        raise ValueError(f"no commands here ({request.cmd})")

    settings = LinkSettings(
        host=mosquitto.host,
        port=mosquitto.port,
        nid=nid,
        ca_file=pki.ca_file,
        cert_file=cert.cert_file,
        key_file=cert.key_file,
        keepalive=5,
        timeout=5,
    )
    sync = ShadowSync(
        settings,
        store,
        report_interval=1.0,
        reported=reported,
        on_desired=lambda desired: None,
        commands=commands,
        link="test-counting",
    )
    link = sync.link
    assert isinstance(link, CountingLink)
    await sync.load()
    task = asyncio.create_task(sync.run(), name=f"sync-{name}")
    try:

        async def in_the_cloud() -> bool:
            shadow = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
            return shadow["state"]["reported"].get("nodeprops") == {"link": "test-counting"}

        await eventually(in_the_cloud, what="the report in the cloud's shadow")
        assert link.published[Channel.SHADOW_GET] >= 1
        assert link.published[Channel.SHADOW_UPDATE] >= 1
    finally:
        await sync.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_built_in_link_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: HarnessPKI
) -> None:
    """A second package registering `mqtt` makes the name ambiguous: the built-in is looked up
    by name like any plug-in, and never silently replaced."""
    info = tmp_path / "impostor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: impostor\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[baetyl_py.plugins.sync_link]\nmqtt = os:getcwd\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cert = pki.node("default.edge-1")
    settings = LinkSettings(
        "127.0.0.1", 1, "default.edge-1", pki.ca_file, cert.cert_file, cert.key_file, 5, 5.0
    )

    async def ignored(*args: Any) -> Any:
        return None

    with pytest.raises(PluginError, match="'mqtt' is registered by more than one installed"):
        ShadowSync(
            settings,
            LocalStore(tmp_path / "store"),
            report_interval=1.0,
            reported=ignored,
            on_desired=lambda desired: None,
            commands=ignored,
        )


def test_a_link_that_cannot_be_made_stops_the_agent_with_its_name(
    tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI
) -> None:
    site = tmp_path / "site"
    info = site / "broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[baetyl_py.plugins.sync_link]\nbroken = os:getcwd\n")
    config = write_core_config(tmp_path, "default.edge-1", mosquitto=mosquitto, pki=pki)
    done = subprocess.run(
        [str(CORE_BIN), "-c", str(with_link(config, "broken"))],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "baetyl-core: sync link plug-in 'broken' (os:getcwd) could not be set up" in done.stderr
    assert "Traceback" not in done.stderr
