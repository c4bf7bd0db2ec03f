"""The examples and the README's REST walk-through, run as a user would: a real `baetyl-cloud
serve` process and the `baetylctl` command. The hello-native app itself runs on a real node in
tests/e2e/test_demo.py; here its server runs alone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.harness.common import free_port
from tools.kit.cloud import admin_token, serve_args, start_serve
from tools.kit.procs import stop_child

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HELLO = ROOT / "examples/hello-native"


@pytest.fixture
async def cloud_process(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """`baetyl-cloud serve` in its own process; yields the env a baetylctl user would set."""
    port = free_port()
    data_dir = tmp_path / "cloud"
    url = f"http://127.0.0.1:{port}"
    argv = serve_args(data_dir, port, "--no-mqtt", log_level="warning")
    process = await start_serve(argv, url=url, log_file=tmp_path / "cloud.log", linked=False)
    try:
        token = admin_token(data_dir)
        yield {**os.environ, "BAETYL_URL": url, "BAETYL_TOKEN": token, "HOME": str(tmp_path)}
    finally:
        assert await stop_child(process, grace=15) == 0


async def ctl(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        BIN / "baetylctl",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"baetylctl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def test_readme_walkthrough_places_the_hello_example_on_a_gateway(
    cloud_process: dict[str, str],
) -> None:
    env = cloud_process
    await ctl(env, "node", "create", "edge-1", "-l", "role=gateway")
    await ctl(env, "node", "create", "edge-2", "-l", "role=camera")
    await ctl(env, "config", "apply", "-f", "examples/hello-native/config.yaml")
    await ctl(env, "secret", "create", "hello-token", "--from-literal", "token=0123456789abcdef")
    await ctl(env, "app", "apply", "-f", "examples/hello-native/app.yaml")

    app = json.loads(await ctl(env, "app", "get", "hello", "-o", "json"))
    mounted = {volume["name"]: volume for volume in app["volumes"]}
    for volume, kind, name in (
        ("code", "config", "hello-server"),
        ("greeting", "config", "hello-greeting"),
        ("token", "secret", "hello-token"),
    ):
        resource = json.loads(await ctl(env, kind, "get", name, "-o", "json"))
        assert mounted[volume][kind] == {"name": name, "version": resource["version"]}
    gateway = json.loads(await ctl(env, "node", "get", "edge-1", "-o", "json"))
    camera = json.loads(await ctl(env, "node", "get", "edge-2", "-o", "json"))
    assert gateway["desire"]["apps"] == [{"name": "hello", "version": app["version"]}]
    assert camera["desire"]["apps"] == []
    table = await ctl(env, "app", "list")
    assert table.splitlines()[0].split()[:2] == ["NAME", "VERSION"]
    assert "hello" in table


def test_the_hello_server_config_carries_server_py_unchanged() -> None:
    documents = yaml.safe_load_all((HELLO / "config.yaml").read_text(encoding="utf-8"))
    (code,) = [document for document in documents if document["name"] == "hello-server"]
    assert code["data"]["server.py"] == (HELLO / "server.py").read_text(encoding="utf-8"), (
        "examples/hello-native/config.yaml must carry server.py unchanged: copy server.py into "
        "its `server.py: |` block (indented by four spaces)"
    )


async def test_the_hello_server_answers_with_the_greeting_and_hides_the_token(
    tmp_path: Path,
) -> None:
    """server.py as a node runs it: from the instance directory, with conf/ and secret/."""
    for directory in ("app", "conf", "secret"):
        (tmp_path / directory).mkdir()
    shutil.copy2(HELLO / "server.py", tmp_path / "app/server.py")
    (tmp_path / "conf/greeting.txt").write_text("Hello, test\n")
    (tmp_path / "secret/token").write_text("s3cr3t-t0ken")
    port = free_port()
    env = {**os.environ, "HELLO_PORT": str(port), "HELLO_HOST": "127.0.0.1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "app/server.py", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(url + "/health") as answer:
                        assert answer.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with session.get(url + "/") as answer:
                assert answer.status == 200
                page = await answer.text()
            async with session.get(url + "/nope") as answer:
                assert answer.status == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    lines = page.splitlines()
    assert lines[0] == "Hello, test"
    assert "s3cr3t-t0ken" not in page
    digest = hashlib.sha256(b"s3cr3t-t0ken").hexdigest()[:12]
    assert lines[2] == f"secret token: 12 characters, sha256 {digest}..."
