"""A native program shipped as a zip (examples/native-program): uploaded to the cloud's object
store, named by a program configuration, run by the node from `programConfig`."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import aiohttp
import yaml

from agent.core.programs import node_platform
from tests.e2e.conftest import AgentFactory, Cloud
from tests.e2e.test_scenarios import EXAMPLES, wait_running
from tools.kit.waiting import eventually

EXAMPLE = EXAMPLES / "native-program"


def program_zip() -> bytes:
    """What `python3 -m zipfile -c ../hello.zip .` makes of program/ (files at the root)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((EXAMPLE / "program").iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


async def test_a_program_config_runs_on_a_native_node(
    edge_cloud: Cloud, edge_agents: AgentFactory, tmp_path: Path
) -> None:
    cloud = edge_cloud
    platform = node_platform()
    archive = tmp_path / "hello.zip"
    archive.write_bytes(program_zip())
    await cloud.ctl("object", "upload", f"programs/hello/{platform}.zip", str(archive))
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    # The example names the amd64 zip; a node of another platform gets its own (same files).
    config["data"][0]["key"] = platform
    config["data"][0]["value"]["object"] = f"hello/{platform}.zip"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    await cloud.ctl("config", "apply", "-f", str(config_file))
    await cloud.ctl("node", "create", "edge-1", "-l", "example=native-program")
    agent = await edge_agents("edge-1")
    await cloud.ctl("app", "apply", "-f", "examples/native-program/app.yaml")
    app = await cloud.rest("/v1/apps/hello-program")
    assert app["services"][0]["programConfig"]["name"] == "hello-program"
    assert app["services"][0].get("command", []) == []
    stats = await wait_running(cloud, "edge-1", "hello-program", app["version"])
    [instance] = stats["instances"].values()
    assert instance["pid"] in agent.app_pids("hello-program")
    [program_dir] = list(agent.run_dir.rglob("var/lib/baetyl/bin"))
    assert (program_dir / "hello.py").is_file()
    assert (program_dir / "program.yml").is_file()
    ports = await eventually(lambda: _ports(agent.run_dir), limit=20, what="the registry")

    async def greeting() -> str | None:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{ports[0]}/") as answer,
            ):
                return await answer.text() if answer.status == 200 else None
        except aiohttp.ClientConnectionError:
            return None

    text = await eventually(greeting, limit=20, what="the program answering")
    assert text == "hello, native program from hello-program\n"
    readme = (EXAMPLE / "README.md").read_text()
    for command in cloud.commands:
        if " object upload " not in command and " config apply " not in command:
            assert command in readme, command


def _ports(run_dir: Path) -> list[int] | None:
    """The app's ports in the native backend's registry (`{app: {service: ["host:port"]}}`)."""
    registry = run_dir / "services.json"
    if not registry.exists():
        return None
    entries = json.loads(registry.read_text())
    addresses = entries.get("hello-program", {}).get("hello", [])
    return [int(address.rsplit(":", 1)[1]) for address in addresses] or None
