"""The examples and the README's REST walk-through, run as a user would: a real `baetyl-cloud
serve` process and the `baetylctl` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness.common import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
async def cloud_process(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """`baetyl-cloud serve` in its own process; yields the env a baetylctl user would set."""
    port = free_port()
    data_dir = tmp_path / "cloud"
    process = await asyncio.create_subprocess_exec(
        BIN / "baetyl-cloud",
        "--log-level",
        "warning",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        "--no-mqtt",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(url + "/health") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        token = (data_dir / "admin.token").read_text().strip()
        yield {**os.environ, "BAETYL_URL": url, "BAETYL_TOKEN": token, "HOME": str(tmp_path)}
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)


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
    await ctl(env, "config", "apply", "-f", "examples/hello-config.yaml")
    await ctl(env, "app", "apply", "-f", "examples/hello-native.yaml")

    app = json.loads(await ctl(env, "app", "get", "hello", "-o", "json"))
    config = json.loads(await ctl(env, "config", "get", "hello-page", "-o", "json"))
    assert app["volumes"][0]["config"] == {"name": "hello-page", "version": config["version"]}
    gateway = json.loads(await ctl(env, "node", "get", "edge-1", "-o", "json"))
    camera = json.loads(await ctl(env, "node", "get", "edge-2", "-o", "json"))
    assert gateway["desire"]["apps"] == [{"name": "hello", "version": app["version"]}]
    assert camera["desire"]["apps"] == []
    table = await ctl(env, "app", "list")
    assert table.splitlines()[0].split()[:2] == ["NAME", "VERSION"]
    assert "hello" in table
