"""`baetyl-init` as a user runs it, against the real cloud: activation, and every refusal with
its exit code and a message that says what to do (never a traceback).

baetyl-init runs as its own process (it blocks on HTTP); the cloud runs in the test's loop.
Starting baetyl-core is covered by tests/e2e/test_install.py; here `--no-start`.
"""

from __future__ import annotations

import asyncio
import re
import stat
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from agent.core.config import load_config, node_identity
from agent.init.errors import ExitCode
from cloud.settings import InstallSettings
from tests.harness.cloud import CloudServer, start_cloud
from tests.harness.common import free_port

INIT = Path(sys.executable).parent / "baetyl-init"
BROKER = "mqtts://broker.example:8883"
_TOKEN = re.compile(r"token=([A-Za-z0-9_.-]+)")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    install = InstallSettings(node_mqtt_url=BROKER)
    runner, server = await start_cloud(tmp_path / "cloud", None, install=install)
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


async def baetyl_init(*args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        INIT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def new_token(cloud: CloudServer, name: str) -> str:
    found = _TOKEN.search((await cloud.ok("GET", f"/v1/nodes/{name}/init"))["cmd"])
    assert found is not None
    return found.group(1)


def refused(run: Run, code: ExitCode, *fragments: str) -> None:
    assert run.code == code, (run.out, run.err)
    for fragment in fragments:
        assert fragment in run.err
    assert "Traceback" not in run.err + run.out
    assert run.err.startswith("baetyl-init: error: ")


async def test_help_lists_the_options_and_exit_codes() -> None:
    run = await baetyl_init("--help")
    assert run.code == 0
    for option in ("--cloud", "--token", "--prefix", "--no-systemd", "--no-start", "exit codes"):
        assert option in run.out
    usage = await baetyl_init("--cloud", "ftp://x", "--token", "t")
    assert usage.code == ExitCode.USAGE
    assert "expected http(s)://HOST[:PORT]" in usage.err


async def test_activation_writes_the_node_and_a_second_run_keeps_it(
    cloud: CloudServer, tmp_path: Path
) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await new_token(cloud, "edge-1")
    prefix = tmp_path / "opt"
    base = tmp_path / "base.yml"
    base.write_text("engine:\n  interval: 5s\n")
    args = ("--cloud", cloud.url, "--token", token, "--prefix", str(prefix), "--no-start")
    run = await baetyl_init(*args, "--base-config", str(base), "--api-listen", "127.0.0.1:31999")
    assert run.code == 0, run.err
    assert "==> node default.edge-1" in run.out
    assert f"broker {BROKER}" in run.out
    config = load_config(prefix / "etc/baetyl/core.yml")
    assert node_identity(config).nid == "default.edge-1"
    assert (config.cloud.mqtt, config.engine.interval) == (BROKER, 5.0)
    assert config.api.listen == "127.0.0.1:31999"
    assert stat.S_IMODE((prefix / "var/lib/baetyl/node/client.key").stat().st_mode) == 0o600
    key = (prefix / "var/lib/baetyl/node/client.key").read_bytes()

    again = await baetyl_init(*args)
    assert again.code == 0, again.err
    assert "already activated as default.edge-1: keeping it" in again.out
    assert (prefix / "var/lib/baetyl/node/client.key").read_bytes() == key

    # The token is used up: on a fresh prefix it activates nothing.
    elsewhere = await baetyl_init(*args[:4], "--prefix", str(tmp_path / "other"), "--no-start")
    refused(elsewhere, ExitCode.TOKEN_REFUSED, "already used to activate node default.edge-1")
    assert not (tmp_path / "other/etc/baetyl/core.yml").exists()


async def test_a_prefix_holding_another_node_is_left_alone(
    cloud: CloudServer, tmp_path: Path
) -> None:
    prefix = tmp_path / "opt"
    for name in ("edge-1", "edge-2"):
        await cloud.ok("POST", "/v1/nodes", {"name": name})
    first = await baetyl_init(
        "--cloud", cloud.url, "--token", await new_token(cloud, "edge-1"),
        "--prefix", str(prefix), "--no-start",
    )  # fmt: skip
    assert first.code == 0, first.err
    before = (prefix / "etc/baetyl/core.yml").read_text()
    token = await new_token(cloud, "edge-2")
    run = await baetyl_init("--cloud", cloud.url, "--token", token, "--prefix", str(prefix))
    refused(
        run, ExitCode.ALREADY_ACTIVATED, "already holds node default.edge-1, not default.edge-2"
    )
    assert (prefix / "etc/baetyl/core.yml").read_text() == before
    info = await cloud.ok("GET", f"/v1/active?token={token}", anonymous=True)
    assert info["nid"] == "default.edge-2"  # and the token is still good for another prefix
    other = await baetyl_init(
        "--cloud", cloud.url, "--token", token, "--prefix", str(tmp_path / "two"), "--no-start"
    )
    assert other.code == 0, other.err


async def test_a_bad_token_or_a_deleted_node_is_refused(cloud: CloudServer, tmp_path: Path) -> None:
    await cloud.ok("POST", "/v1/nodes", {"name": "edge-1"})
    token = await new_token(cloud, "edge-1")
    prefix = tmp_path / "opt"
    tampered = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    run = await baetyl_init("--cloud", cloud.url, "--token", tampered, "--prefix", str(prefix))
    refused(run, ExitCode.TOKEN_REFUSED, "refused the install token", "altered")
    assert not prefix.exists()
    await cloud.ok("DELETE", "/v1/nodes/edge-1")
    gone = await baetyl_init("--cloud", cloud.url, "--token", token, "--prefix", str(prefix))
    refused(gone, ExitCode.FAILED, "does not know this node", "create it again")


async def test_an_unreachable_cloud_is_reported_as_such(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    run = await baetyl_init("--cloud", closed, "--token", "t.t", "--prefix", str(tmp_path / "x"))
    refused(run, ExitCode.CLOUD_UNREACHABLE, f"cannot reach the cloud at {closed}", "refused")
    unknown = await baetyl_init("--cloud", "http://no-such-host.invalid:9004", "--token", "t.t")
    refused(unknown, ExitCode.CLOUD_UNREACHABLE, "does not resolve")
    assert not (tmp_path / "x").exists()


async def test_a_clock_far_from_the_clouds_stops_before_activation(tmp_path: Path) -> None:
    async def info(request: web.Request) -> web.Response:
        body = {"namespace": "default", "name": "edge-1", "nid": "default.edge-1", "expires": 1e10}
        response = web.json_response(body)
        response.headers["Date"] = formatdate(time.time() - 3600, usegmt=True)
        return response

    async def activate(request: web.Request) -> web.Response:
        raise AssertionError("activation must not be attempted with a skewed clock")

    app = web.Application()
    app.router.add_get("/v1/active", info)
    app.router.add_post("/v1/active", activate)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        run = await baetyl_init(
            "--cloud", f"http://127.0.0.1:{port}", "--token", "t.t",
            "--prefix", str(tmp_path / "opt"),
        )  # fmt: skip
    finally:
        await runner.cleanup()
    refused(run, ExitCode.CLOCK_SKEW, "60 min ahead of the cloud's", "Fix the clock")
    assert not (tmp_path / "opt").exists()


def test_the_written_config_is_plain_yaml(tmp_path: Path) -> None:
    # core.yml is meant to be read and edited by people: block style, no Python tags.
    from agent.init import files  # noqa: PLC0415 - local to this small check

    layout = files.Layout(tmp_path)
    text = yaml.safe_dump(files.core_config(layout, mqtt_url=BROKER, api_listen="a:1"))
    assert "!!" not in text
    assert "{" not in text
