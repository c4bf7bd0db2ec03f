"""`make demo` end to end: tools/demo.py, the script the make targets run, in a temporary directory
with free ports. `up` installs a node on this machine with the real install command and deploys
examples/hello-native; the curl command it prints must work; a second `up` reuses what runs;
`down` must leave no process behind (cloud, broker, baetyl-core, app) and the directory removable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest
import yaml

from agent.core.kube.client import KubeApi, ObjectRef
from tests.harness.common import free_port
from tests.harness.kube import KubeCluster
from tools.kube.cluster import running
from tools.kube.layout import ClusterLayout

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools/demo.py"
EXAMPLE = ROOT / "examples/hello-native"
RUN_TIMEOUT = 240.0


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """The demo's directory, outside pytest's 0700 tree (as root the broker runs as `mosquitto`
    and must pass through). Whatever still runs from it is killed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="baetyl-demo-"))
    top.chmod(0o711)
    try:
        yield top / "demo"
    finally:
        for process in processes_under(top):
            with contextlib.suppress(psutil.Error):
                process.kill()
        shutil.rmtree(top, ignore_errors=True)


def processes_under(top: Path) -> list[psutil.Process]:
    """Live processes that belong to a demo in `top`: named in their command line (cloud, broker,
    baetyl-core) or working there (apps)."""
    prefix = f"{top}{os.sep}"
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            command = process.cmdline()
            if any(part.startswith(prefix) for part in command) or process.cwd().startswith(prefix):
                found.append(process)
    return found


async def demo(*args: str) -> tuple[int, str]:
    """Run tools/demo.py with `args` as `make demo` does; (exit code, stdout + stderr)."""
    env = {**os.environ, "PIP_CACHE_DIR": str(Path.home() / ".cache/baetyl-py/pip")}
    env.pop("VIRTUAL_ENV", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.text()


def greeting() -> str:
    documents = list(yaml.safe_load_all((EXAMPLE / "config.yaml").read_text(encoding="utf-8")))
    (config,) = [d for d in documents if d["name"] == "hello-greeting"]
    return str(config["data"]["greeting.txt"])


async def test_demo_serves_the_hello_app_and_demo_stop_leaves_nothing_running(
    demo_dir: Path, agent_wheel: Path
) -> None:
    api, mqtt, agent, app = (free_port() for _ in range(4))
    up = [
        "up", "--dir", str(demo_dir),
        "--api-port", str(api), "--mqtt-port", str(mqtt),
        "--agent-port", str(agent), "--app-port", str(app),
        "--dist-dir", str(agent_wheel.parent), "--python", sys.executable,
    ]  # fmt: skip

    code, out = await demo(*up)
    assert code == 0, out
    for step in ("starting the cloud", "creating node edge-demo", "==> the node is online"):
        assert step in out, out
    (url,) = re.findall(r"^  curl (http://\S+)$", out, re.MULTILINE)
    assert url == f"http://127.0.0.1:{app}/"
    status, page = await get(url)
    assert status == 200, page
    assert page.startswith(greeting()), page
    token = (demo_dir / "cloud/admin.token").read_text().strip()
    status, answer = await get(f"http://127.0.0.1:{api}/v1/secrets/hello-token", token)
    secret = yaml.safe_load(answer)["data"]["token"]
    assert secret not in page
    assert hashlib.sha256(secret.encode()).hexdigest()[:12] in page
    started = await asyncio.to_thread(processes_under, demo_dir.parent)
    names = " ".join(" ".join(p.cmdline()) for p in started)
    for part in ("baetyl-cloud", "mosquitto", "baetyl-core", "app/server.py"):
        assert part in names, names

    # Again while it runs: everything is reused, the same summary comes out.
    code, again = await demo(*up)
    assert code == 0, again
    assert "the cloud already runs" in again, again
    assert "baetyl-core already runs" in again, again
    assert "installing node" not in again, again
    assert re.findall(r"^  curl (http://\S+)$", again, re.MULTILINE) == [url]
    pids = {p.pid for p in await asyncio.to_thread(processes_under, demo_dir.parent)}
    assert pids == {p.pid for p in started}

    code, out = await demo("down", "--dir", str(demo_dir))
    assert code == 0, out
    assert "removing app hello through the cloud" in out, out
    assert await asyncio.to_thread(processes_under, demo_dir.parent) == []
    shutil.rmtree(demo_dir)  # nothing in it belongs to a process any more, or to another user


async def test_demo_names_a_busy_port_and_starts_nothing(demo_dir: Path, agent_wheel: Path) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code, out = await demo(
            "up", "--dir", str(demo_dir), "--api-port", str(port),
            "--dist-dir", str(agent_wheel.parent),
        )  # fmt: skip
    finally:
        server.close()
        await server.wait_closed()
    assert code == 1, out
    assert f"port 127.0.0.1:{port} for the cloud's REST API is in use by " in out, out
    assert f"(pid {os.getpid()})" in out, out
    assert "--api-port PORT" in out
    assert await asyncio.to_thread(processes_under, demo_dir.parent) == []


@pytest.mark.kube
@pytest.mark.timeout(480)
async def test_demo_in_kube_mode_runs_hello_as_a_deployment_and_stops_the_cluster_too(
    demo_dir: Path, agent_wheel: Path, kube_cluster: KubeCluster
) -> None:
    api, mqtt, agent, app = (free_port() for _ in range(4))
    up = [
        "up", "--mode", "kube", "--dir", str(demo_dir),
        "--api-port", str(api), "--mqtt-port", str(mqtt),
        "--agent-port", str(agent), "--app-port", str(app),
        "--dist-dir", str(agent_wheel.parent), "--python", sys.executable,
    ]  # fmt: skip
    async with kube_cluster.paused():  # the demo starts a cluster of its own
        code, out = await demo(*up)
        try:
            assert code == 0, out
            assert "Deployment hello in namespace baetyl-edge, pod hello-" in out, out
            (url,) = re.findall(r"^  curl (http://\S+)$", out, re.MULTILINE)
            status, page = await get(url)
            assert status == 200, page
            assert page.startswith(greeting()), page
            assert "on node edge-demo, pid 1\n" in page  # PID 1: in a container of its own
            api_client = await KubeApi.connect(demo_dir / "kube/kubeconfig")
            try:
                ref = ObjectRef("apps/v1", "Deployment", "baetyl-edge", "hello")
                assert await api_client.get(ref) is not None
            finally:
                await api_client.close()
        finally:
            code, down = await demo("down", "--dir", str(demo_dir))
        assert code == 0, down
        assert "stopping the local Kubernetes and cleaning the host" in down, down
        assert await asyncio.to_thread(processes_under, demo_dir.parent) == []
        layout = ClusterLayout(demo_dir / "kube")
        assert not any(running(layout).values())
