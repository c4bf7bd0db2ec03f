"""`make demo` / `make demo-stop` (docs/quickstart.md): a cloud, a node on this machine and the
hello-native app (`--mode kube`, `make demo MODE=kube`: a local Kubernetes, a node running the
kube backend on it and hello-kube; tools/demo_kube.py). `up` starts `baetyl-cloud serve` in the
background, then does what a user does with the user's tools (`baetylctl node create`,
`baetylctl node init` and its install command, `baetylctl ... apply`) and waits until the app
runs; what already runs is reused. `down` deletes the app and stops it all; data and logs stay.
The process plumbing is `tools.kit`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `tools.kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil
import yaml

from tools import demo_kube
from tools.kit import cloud as kit_cloud
from tools.kit import procs
from tools.kit.ctl import Ctl
from tools.kit.node import NodeInstall
from tools.kit.progress import Progress
from tools.kit.rest import Rest, RestError, healthy
from tools.kit.waiting import Died, WaitTimeout, eventually

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples/hello-native"
DEFAULT_DIR = ROOT / "var/demo"
HOST, NODE, LABEL, APP, SECRET = "127.0.0.1", "edge-demo", "role=gateway", "hello", "hello-token"
LIMITS = {"online": 90.0, "running": 90.0, "remove": 30.0}  # seconds to wait for each
CLOUD_STOP = 25.0


class DemoError(procs.KitError):
    """A step failed; the message says what happened and where to look."""


# What the demo listens on, all on 127.0.0.1: key (flag --KEY-port), default port, what for.
PORTS = {
    "api": (9004, "the cloud's REST API"),
    "mqtt": (8883, "the cloud's MQTT broker"),
    "agent": (30050, "baetyl-core's local API"),
    "app": (8080, "the hello app"),
}
Ports = dict[str, int]


class Demo:
    """One demo: every file under `var`, the ports, where the agent wheel comes from."""

    def __init__(
        self, var: Path, ports: Ports, dist: Path | None, python: str, mode: str = "native"
    ) -> None:
        self.var, self.ports, self.python, self.mode = var, ports, python, mode
        self.build_wheel, self.dist = dist is None, (dist or ROOT / "dist").absolute()
        self.cloud_dir, self.cloud_pid = var / "cloud", var / "cloud.pid"
        self.cloud_log = var / "cloud.log"
        self.broker_config = self.cloud_dir / "mosquitto/mosquitto.conf"
        self.install_log, self.app_file = var / "install.log", var / "hello-app.yaml"
        self.node = NodeInstall(var / "edge")
        self.url, self.app_url = f"http://{HOST}:{ports['api']}", f"http://{HOST}:{ports['app']}/"
        self.agent_url = f"http://{HOST}:{ports['agent']}"

    def cloud(self) -> psutil.Process | None:
        marker = str(self.cloud_dir)
        return procs.process_from(self.cloud_pid, program="baetyl-cloud", marker=marker)

    def broker(self) -> psutil.Process | None:
        return procs.process_with(str(self.broker_config))

    def command(self, action: str) -> str:
        """How the user runs `action` on this demo again."""
        if self.var == DEFAULT_DIR:
            mode = " MODE=kube" if self.mode == "kube" else ""
            return ("make demo" if action == "up" else "make demo-stop") + mode
        return f"{shown(BIN / 'python')} tools/demo.py {action} --dir {shown(self.var)}"


def shown(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (shorter to read)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def load_mode(var: Path, asked: str | None) -> str:
    """The mode DIR was set up in (demo.json), else the one asked, else native; a node installed
    in one mode cannot switch to the other."""
    try:
        recorded = json.loads((var / "demo.json").read_text(encoding="utf-8")).get("mode")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is None or not (var / "cloud").exists():
        return asked or "native"
    if asked is not None and asked != recorded:
        raise DemoError(
            f"{shown(var)} was set up with MODE={recorded}: keep it, or start over: "
            f"make demo-stop && rm -rf {shown(var)}"
        )
    return str(recorded)


def load_ports(var: Path, asked: dict[str, int | None]) -> Ports:
    """The ports DIR was set up with (demo.json), else the flags, else the defaults. core.yml
    names the broker and the agent's API: of a set-up DIR only the app's port may change."""
    given = {key: value for key, value in asked.items() if value is not None}
    state = var / "demo.json"
    if not state.exists() or not (var / "cloud").exists():
        return {key: default for key, (default, _) in PORTS.items()} | given
    try:
        recorded: Ports = json.loads(state.read_text(encoding="utf-8"))["ports"]
        valid = set(recorded) == set(PORTS) and all(type(v) is int for v in recorded.values())
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise DemoError(f"{shown(state)} is damaged: remove it, or the whole directory")
    if changed := [f"--{k}-port {v}" for k, v in given.items() if k != "app" and v != recorded[k]]:
        raise DemoError(
            f"{shown(var)} was set up with other ports than {', '.join(changed)}: keep them, "
            f"or start over: make demo-stop && rm -rf {shown(var)}"
        )
    return recorded | {"app": given.get("app", recorded["app"])}


async def check_port(demo: Demo, key: str) -> None:
    port, what = demo.ports[key], PORTS[key][1]
    if held := await asyncio.to_thread(procs.port_in_use, port):
        raise DemoError(
            f"port {HOST}:{port} for {what} is {held}: pass --{key}-port PORT (DEMO_ARGS)"
        )


async def ensure_wheel(demo: Demo, progress: Progress) -> None:
    """The agent wheel the cloud serves: `make wheel`, a file target, rebuilds it when stale."""
    if not demo.build_wheel:  # --dist-dir: without a wheel there, the install says so
        return
    make = ["make", "--no-print-directory", "-C", str(ROOT), "wheel"]
    if await (await asyncio.create_subprocess_exec(*make, "--question")).wait() != 0:
        with progress.step("building the agent wheel the cloud serves to nodes (make wheel)"):
            if await procs.run_streamed(make, progress=progress, limit=600) != 0:
                raise DemoError("`make wheel` failed (its output is above)")


async def ensure_cloud(demo: Demo, progress: Progress, session: aiohttp.ClientSession) -> int:
    """The running cloud's pid: the one already running in DIR, or a new one."""
    running = await asyncio.to_thread(demo.cloud)
    if running is not None and await healthy(session, demo.url):
        progress.say(f"the cloud already runs (pid {running.pid}, {demo.url})")
        return running.pid
    if running is not None:
        raise DemoError(
            f"baetyl-cloud (pid {running.pid}) runs but does not answer on {demo.url}; "
            f"see {shown(demo.cloud_log)}, or run {demo.command('down')}"
        )
    api, mqtt = f"{HOST}:{demo.ports['api']}", f"{HOST}:{demo.ports['mqtt']}"
    with progress.step(f"starting the cloud (REST {api}, broker {mqtt})"):
        await check_port(demo, "api")
        await check_port(demo, "mqtt")
        argv = [
            str(BIN / "baetyl-cloud"), "serve", "--data-dir", str(demo.cloud_dir),
            "--listen", api, "--mqtt-listen", mqtt, "--dist-dir", str(demo.dist),
        ]  # fmt: skip
        since = await asyncio.to_thread(kit_cloud.link_ups, demo.cloud_log)
        spawn = procs.spawn_detached
        pid = await asyncio.to_thread(spawn, argv, log=demo.cloud_log, pid_file=demo.cloud_pid)
        alive = lambda: procs.alive(pid)  # noqa: E731
        await kit_cloud.wait_serving(demo.url, log_file=demo.cloud_log, alive=alive, since=since)
    return pid


async def ensure_node(ctl: Ctl, progress: Progress) -> bool:
    """Create the node (True), or give the existing one its label back if it lost it (False)."""
    node = await ctl.read("node", "get", NODE)
    key, value = LABEL.split("=")
    if node is None or node["labels"].get(key) != value:
        verb = ["create", NODE, "-l", LABEL] if node is None else ["label", NODE, LABEL]
        with progress.step(f"{'creating' if node is None else 'labelling'} node {NODE} ({LABEL})"):
            await ctl.run("node", *verb, progress=progress)
    return node is None


async def ensure_installed(
    demo: Demo, ctl: Ctl, rest: Rest, progress: Progress, fresh: bool
) -> int:
    """baetyl-core's pid, once the node is installed under DIR/edge and online."""
    node, core = demo.node, await asyncio.to_thread(demo.node.core)
    if fresh and await asyncio.to_thread(node.prefix.exists):
        # An installation of an earlier node of that name: its certificate is no longer valid.
        with progress.step(f"removing {shown(node.prefix)}, left from an earlier cloud or node"):
            await asyncio.to_thread(node.stop)
            await asyncio.to_thread(shutil.rmtree, node.prefix)
    elif core is not None:
        with progress.step(f"baetyl-core already runs (pid {core.pid}); checking it is online"):
            await eventually(lambda: online(rest), limit=LIMITS["online"], what=f"{NODE} online")
        return core.pid
    await check_port(demo, "agent")
    method = "curl" if shutil.which("curl") else "wget"
    install = (await ctl.read("node", "init", NODE, "--method", method))["cmd"]
    env = os.environ | {"BAETYL_API_LISTEN": demo.agent_url[7:], "BAETYL_PYTHON": demo.python}
    if demo.mode == "kube":
        kubeconfig = demo_kube.cluster_dir(demo.var) / "kubeconfig"
        base = await asyncio.to_thread(demo_kube.write_base_config, demo.var, kubeconfig)
        env |= {"BAETYL_EXTRAS": "kube", "BAETYL_BASE_CONFIG": str(base)}
    with progress.step(f"installing node {NODE} here (prefix {shown(node.prefix)}, no systemd)"):
        progress.detail(f"$ baetylctl node init {NODE} --method {method}")
        progress.detail(f"$ {install.split('token=')[0]}token=...' && sh baetyl-install.sh")
        code = await node.install(
            install, progress=progress, workdir=demo.var / "install", log=demo.install_log, env=env
        )
    if code != 0:
        tail = await asyncio.to_thread(procs.tail, demo.install_log, 15, indent="    ")
        raise DemoError(
            f"the install command failed (exit {code}); all its output is in "
            f"{shown(demo.install_log)}, baetyl-core's log in {shown(node.core_log)}. The end of "
            f"it:\n{tail}\nIf {shown(demo.var)} is in a mixed state, start over: "
            f"{demo.command('down')} && rm -rf {shown(demo.var)}"
        )
    if (core := await asyncio.to_thread(node.core)) is None:
        raise DemoError(f"baetyl-core is not running; see {shown(node.core_log)}")
    return core.pid


async def online(rest: Rest) -> bool:
    return bool((await rest.ok("GET", f"/v1/nodes/{NODE}")).get("ready") == 1)


def write_app_file(demo: Demo) -> None:
    """examples/hello-native/app.yaml (hello-kube/ in kube mode), listening on
    127.0.0.1:<app port> instead of *:8080."""
    port = demo.ports["app"]
    example = demo_kube.EXAMPLE if demo.mode == "kube" else EXAMPLE
    spec = yaml.safe_load((example / "app.yaml").read_text(encoding="utf-8"))
    for service in spec["services"]:
        env = [e for e in service.get("env", []) if e["name"] not in ("HELLO_PORT", "HELLO_HOST")]
        env += [{"name": "HELLO_PORT", "value": str(port)}, {"name": "HELLO_HOST", "value": HOST}]
        service["env"] = env
        for published in service.get("ports", []):
            published["containerPort"] = port
            if "hostPort" in published:
                published["hostPort"] = port
        for probe in ("readinessProbe", "livenessProbe"):
            if "httpGet" in service.get(probe, {}):
                service[probe]["httpGet"]["port"] = port
    where = example.relative_to(ROOT) / "app.yaml"
    header = f"# {where} as `make demo` applies it: on {HOST}:{port}.\n"
    demo.app_file.write_text(header + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


async def apply_example(demo: Demo, ctl: Ctl, progress: Progress) -> str:
    """Apply the configurations, the secret (once) and the app; the app's version."""
    example = demo_kube.EXAMPLE if demo.mode == "kube" else EXAMPLE
    with progress.step(f"deploying {shown(example)} (2 configurations, a secret, the app)"):
        await ctl.run("config", "apply", "-f", shown(EXAMPLE / "config.yaml"), progress=progress)
        if await ctl.read("secret", "get", SECRET) is None:
            token = demo.var / f"{SECRET}.tmp"  # a file: the token stays off command lines
            await asyncio.to_thread(token.write_text, secrets.token_hex(16))
            await ctl.run(
                "secret", "create", SECRET, "--from-file", f"token={token}", progress=progress
            )
            await asyncio.to_thread(token.unlink)
        else:
            progress.detail(f"secret/{SECRET} kept")
        await asyncio.to_thread(write_app_file, demo)
        if not await asyncio.to_thread(demo.node.apps):
            await check_port(demo, "app")  # when the app runs, it holds the port itself
        await ctl.run("app", "apply", "-f", shown(demo.app_file), progress=progress)
        return str((await ctl.read("app", "get", APP))["version"])


async def wait_running(demo: Demo, rest: Rest, version: str, progress: Progress) -> Any:
    """The app's stats once the node reports the version Running."""
    seen: dict[str, Any] = {}

    async def running() -> Any:
        stats = (await rest.ok("GET", f"/v1/nodes/{NODE}")).get("report", {}).get("appstats", [])
        seen.update(next((s for s in stats if s.get("name") == APP), {}))
        done = (seen.get("version"), seen.get("status")) == (version, "Running")
        return dict(seen) if done else None

    def last() -> str:
        logs = f"{app_log(demo)} and {shown(demo.node.core_log)}"
        return f"last report: {seen.get('status')} {seen.get('cause') or ''}; see {logs}"

    with progress.step(f"waiting until node {NODE} reports {APP} Running"):
        what = f"{APP} version {version} Running on {NODE}"
        return await eventually(running, limit=LIMITS["running"], what=what, detail=last)


async def page(session: aiohttp.ClientSession, url: str) -> str | None:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
            return await answer.text() if answer.status == 200 else None
    return None


def app_log(demo: Demo) -> str:
    """Where the app's output is: a file (native), the pod's log (kube)."""
    if demo.mode == "kube":
        return f"`{demo_kube.kubectl(demo.var)} -n baetyl-edge logs deploy/{APP}`"
    return shown(demo.node.app_log(APP, "web-1"))


async def up(demo: Demo, progress: Progress) -> None:
    started = time.monotonic()
    await asyncio.to_thread(demo.var.mkdir, parents=True, exist_ok=True)
    state = json.dumps({"ports": demo.ports, "mode": demo.mode})
    await asyncio.to_thread((demo.var / "demo.json").write_text, state)
    if demo.mode == "kube":
        await demo_kube.ensure_cluster(demo.var, progress)
    await ensure_wheel(demo, progress)
    async with aiohttp.ClientSession() as session:
        cloud_pid = await ensure_cloud(demo, progress, session)
        token = await asyncio.to_thread(kit_cloud.admin_token, demo.cloud_dir)
        ctl, rest = Ctl(demo.url, token), Rest(session, demo.url, token)
        fresh = await ensure_node(ctl, progress)
        core_pid = await ensure_installed(demo, ctl, rest, progress, fresh)
        version = await apply_example(demo, ctl, progress)
        stats = await wait_running(demo, rest, version, progress)
        with progress.step(f"asking the app: GET {demo.app_url}"):
            text = await eventually(lambda: page(session, demo.app_url), limit=10, what="a page")
    broker = await asyncio.to_thread(demo.broker)
    ctl_bin, node = shown(BIN / "baetylctl"), demo.node
    files = [demo.cloud_log, demo.cloud_dir / "mosquitto/mosquitto.log", demo.install_log]
    logs = [shown(path) for path in [*files, node.core_log]] + [app_log(demo)]
    instances = stats["instances"].values()
    if demo.mode == "kube":
        pods = ", ".join(i["podName"] for i in instances if i.get("podName"))
        where = f"Deployment {APP} in namespace baetyl-edge, pod {pods}"
        kube = (
            f"\nOn Kubernetes (the local node, {shown(demo_kube.cluster_dir(demo.var))}/):\n"
            f"  {demo_kube.kubectl(demo.var)} -n baetyl-edge get deploy,pods -o wide\n"
        )
    else:
        where = "pid " + ", ".join(str(i["pid"]) for i in instances if i.get("pid"))
        kube = ""
    fields = {
        "elapsed": time.monotonic() - started, "var": shown(demo.var), "cloud_pid": cloud_pid,
        "url": demo.url, "mqtt": f"{HOST}:{demo.ports['mqtt']}", "core_pid": core_pid,
        "broker": f"mosquitto pid {broker.pid}" if broker else "mosquitto", "node": NODE,
        "label": LABEL, "agent_url": demo.agent_url, "app": APP, "version": version,
        "where": where, "kube": kube,
        "app_url": demo.app_url, "page": textwrap.indent(text.expandtabs().strip(), "    "),
        "token_file": shown(demo.cloud_dir / "admin.token"), "ctl": ctl_bin,
        **{f"log{n}": path for n, path in enumerate(logs)},
        "config": shown(EXAMPLE / "config.yaml"), "down": demo.command("down"),
    }  # fmt: skip
    summary = (ROOT / "tools/demo_summary.txt").read_text(encoding="utf-8").format(**fields)
    progress.write(aligned(summary))


def aligned(text: str) -> str:
    """The lines with a tab as two columns, the second one aligned."""
    rows = [line.split("\t") for line in text.splitlines()]
    width = max(len(row[0]) for row in rows if len(row) == 2)
    return "\n".join(f"{row[0]:<{width}}  {row[1]}" if len(row) == 2 else row[0] for row in rows)


async def remove_app(demo: Demo, progress: Progress) -> None:
    """Delete the app with baetylctl and wait until the node stopped it and said so."""
    ctl = Ctl(demo.url, await asyncio.to_thread(kit_cloud.admin_token, demo.cloud_dir))
    if await ctl.read("app", "get", APP) is not None:
        await ctl.run("app", "delete", APP, progress=progress)

    async def gone() -> bool:
        reported = ((await ctl.read("node", "get", NODE)) or {}).get("report", {})
        running = await asyncio.to_thread(demo.node.apps) if demo.mode == "native" else []
        return not running and all(a.get("name") != APP for a in reported.get("apps", []))

    try:
        await eventually(gone, limit=LIMITS["remove"], what=f"node {NODE} to stop {APP}")
    except WaitTimeout as exc:
        progress.detail(str(exc))


async def down(demo: Demo, progress: Progress) -> None:
    cloud, core = await asyncio.to_thread(demo.cloud), await asyncio.to_thread(demo.node.core)
    apps = await asyncio.to_thread(demo.node.apps)
    kube = demo.mode == "kube" and await asyncio.to_thread(demo_kube.cluster_runs, demo.var)
    broker = await asyncio.to_thread(demo.broker)
    if not (cloud or core or apps or kube or broker):
        progress.say(f"nothing of the demo runs in {shown(demo.var)}")
        return
    if cloud is not None and core is not None and (apps or kube):
        with progress.step(f"removing app {APP} through the cloud; the node stops it"):
            await remove_app(demo, progress)
    if core is not None or apps:
        with progress.step("stopping baetyl-core and any app process left running"):
            await asyncio.to_thread(demo.node.stop)
    if cloud is not None:
        with progress.step(f"stopping the cloud (pid {cloud.pid}) and its broker"):
            await asyncio.to_thread(procs.stop, cloud, timeout=CLOUD_STOP)
    if broker := await asyncio.to_thread(demo.broker):
        with progress.step(f"stopping the broker left behind (pid {broker.pid})"):
            await asyncio.to_thread(procs.stop, broker, timeout=CLOUD_STOP)
    await asyncio.to_thread(demo.cloud_pid.unlink, missing_ok=True)
    if kube:
        with progress.step("stopping the local Kubernetes and cleaning the host"):
            if left := await asyncio.to_thread(demo_kube.stop_cluster, demo.var):
                raise DemoError("the local Kubernetes left: " + "; ".join(left))
    progress.say(
        f"stopped. Data and logs stay in {shown(demo.var)}/: `{demo.command('up')}` "
        f"starts it again where it was, `rm -rf {shown(demo.var)}` forgets it"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/demo.py",
        description="The Baetyl-Py demo: a cloud, a node on this machine, the hello-native app.",
    )
    add = parser.add_argument
    add("action", choices=["up", "down"], help="start (or reuse) / stop it")
    add("--dir", type=Path, default=DEFAULT_DIR, help="where it all lives (default var/demo)")
    for key, (default, what) in PORTS.items():
        add(f"--{key}-port", dest=key, type=int, metavar="PORT", help=f"{what} (default {default})")
    add("--dist-dir", type=Path, help="the agent wheel's directory (default dist/, `make wheel`)")
    add(
        "--mode",
        choices=["native", "kube"],
        help="native: apps are processes (default); kube: a local Kubernetes runs them as pods",
    )
    python = os.environ.get("BAETYL_PYTHON", "python3")
    add("--python", default=python, help="the Python of the node's virtualenv (default python3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress("demo", sys.stdout)
    var = args.dir.absolute()
    left = f"[demo] anything already started keeps running (logs in {shown(var)}/)"
    try:
        ports = load_ports(var, {key: getattr(args, key) for key in PORTS})
        demo = Demo(var, ports, args.dist_dir, args.python, load_mode(var, args.mode))
        left += f"; `{demo.command('down')}` stops it"
        asyncio.run(up(demo, progress) if args.action == "up" else down(demo, progress))
    except (procs.KitError, RestError, WaitTimeout, Died) as exc:
        sys.stdout.flush()
        note = f"\n{left}" if args.action == "up" else ""
        sys.stderr.write(f"[demo] error: {exc}{note}\n")
        return 1
    except KeyboardInterrupt:
        progress.write(f"\n[demo] interrupted. {left}")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
