"""Online installation end to end, as a user does it (DESIGN §10, docs/install.md).

A real `baetyl-cloud serve` with its managed Mosquitto serves the install command, the script and
the agent wheel; the script runs with `sh` in a temporary prefix (no systemd), builds a virtualenv
(dependencies from pip's cache or the configured index), runs baetyl-init, which activates the
node and starts baetyl-core; an app created over REST then runs on that node. Every process the
test starts is killed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiomqtt
import psutil
import pytest

from agent.contracts import topics
from agent.contracts.topics import Channel
from cloud.pki.ca import CertificateAuthority, write_certificate_files
from tests.e2e.installing import Cloud, Node, core_processes, node_prefix, serving_cloud, shell
from tools.kit.procs import app_processes
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(420)]


@pytest.fixture
async def cloud(agent_wheel: Path) -> AsyncIterator[Cloud]:
    """`baetyl-cloud serve` with its own broker, serving the wheel of the working tree."""
    async with serving_cloud([agent_wheel]) as serving:
        yield serving


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A prefix and an environment for the install script; its processes are killed after."""
    async with node_prefix(tmp_path) as prefix:
        yield prefix


async def shadow_get_answered(cloud: Cloud, node_dir: Path, nid: str) -> bool:
    """Connect with the node's own certificate and ask shadow/get; whether anything answers."""
    context = ssl.create_default_context(cafile=str(node_dir / "ca.pem"))
    context.load_cert_chain(node_dir / "client.pem", node_dir / "client.key")
    async with aiomqtt.Client("127.0.0.1", cloud.mqtt_port, timeout=5, tls_context=context) as c:
        for topic in topics.agent_subscriptions(nid):
            with contextlib.suppress(aiomqtt.MqttError):
                await c.subscribe(topic, qos=1)
        await c.publish(topics.build(nid, Channel.SHADOW_GET), json.dumps({"clientToken": "x"}))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                async for _ in c.messages:
                    return True
    return False


async def test_a_node_installed_with_the_script_runs_the_apps_it_is_given(
    cloud: Cloud, node: Node
) -> None:
    name = "edge-install"
    nid = f"default.{name}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": {"site": "install-test"}})
    command = (await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"]

    code, out = await shell(node, command)
    assert code == 0, out
    for step in (
        f"installing Baetyl-Py node {nid}",
        "creating the virtualenv",
        f"node {nid}",
        "baetyl-core started",
        "the node is online",
    ):
        assert step in out, out
    view = await cloud.ok("GET", f"/v1/nodes/{name}")
    assert view["ready"] == 1
    (core,) = core_processes(node.config)
    assert int((node.prefix / "var/run/baetyl-core.pid").read_text()) == core.pid

    app = "install-sleeper"
    await cloud.ok(
        "POST",
        "/v1/apps",
        {
            "name": app,
            "mode": "native",
            "selector": "site=install-test",
            "services": [
                {"name": "main", "command": [sys.executable, "-c", "import time; time.sleep(600)"]}
            ],
        },
    )

    async def app_running() -> list[psutil.Process]:
        return app_processes(node.prefix / "var/lib/baetyl/run", app)

    (process,) = await eventually(app_running, limit=60, what="the app process on the node")
    assert str(node.prefix / "var/lib/baetyl/run") in process.cwd()

    # The same script again (its token is used up now): one installation, one agent, and the
    # served wheel installed again over what the venv holds (a rebuilt agent of the same version).
    (installed,) = node.prefix.glob("venv/lib/python*/site-packages/agent/contracts/version.py")
    installed.write_text(installed.read_text(encoding="utf-8") + "# changed here\n", "utf-8")
    code, again = await shell(node, "sh baetyl-install.sh")
    assert code == 0, again
    assert "reusing the virtualenv" in again
    assert "# changed here" not in installed.read_text(encoding="utf-8")
    assert f"already activated as {nid}: keeping it" in again
    assert "baetyl-core already running" in again
    assert [p.pid for p in core_processes(node.config)] == [core.pid]
    assert [p.pid for p in app_processes(node.prefix / "var/lib/baetyl/run", app)] == [process.pid]

    # The same nid with a certificate from another CA is refused by the broker outright.
    node_dir = node.prefix / "var/lib/baetyl/node"
    forger = node.workdir / "forged"
    forger.mkdir()
    shutil.copy2(node_dir / "ca.pem", forger / "ca.pem")
    write_certificate_files(forger, "client", CertificateAuthority.create().issue_client(nid))
    with pytest.raises(aiomqtt.MqttError):
        await shadow_get_answered(cloud, forger, nid)

    # Deleted in the cloud, the node's certificate is revoked: the broker refuses it at the TLS
    # handshake (the CRL, decision #75), on top of the deny list.
    core.kill()  # it would reconnect with the same identity and take the session back
    assert await shadow_get_answered(cloud, node_dir, nid)
    await cloud.ok("DELETE", f"/v1/nodes/{name}")
    with pytest.raises(aiomqtt.MqttError):
        await shadow_get_answered(cloud, node_dir, nid)


async def test_a_used_command_cannot_install_a_second_node(cloud: Cloud, node: Node) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-a"})
    command = (await cloud.ok("GET", "/v1/nodes/edge-a/init"))["cmd"]
    token = command.split("token=")[1].split("'")[0]
    # Activate through the API as another machine would, then the command is spent.
    from agent.init import keys  # noqa: PLC0415 - only this test makes a CSR

    async with aiohttp.ClientSession() as session:
        body = {"token": token, "csr": keys.csr_pem(keys.new_key(), "default.edge-a")}
        async with session.post(cloud.url + "/v1/active", json=body) as response:
            assert response.status == 200
    code, out = await shell(node, command)
    assert code != 0
    assert "curl: (22)" in out or "400" in out
    assert not node.prefix.exists()
