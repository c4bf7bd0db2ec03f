"""`make demo` and `make demo-stop`: a cloud, a node on this machine and the hello-native app.

    .venv/bin/python tools/demo.py up   [--dir DIR] [--api-port N] [--mqtt-port N]
                                        [--agent-port N] [--app-port N] [--dist-dir DIR]
    .venv/bin/python tools/demo.py down [--dir DIR]

`up` starts `baetyl-cloud serve` (SQLite, managed Mosquitto) in the background, creates a node
through the REST API, installs it on this machine with the install command the cloud hands out
(prefix DIR/edge, no systemd), applies examples/hello-native and waits until the app reports
Running. Whatever already runs in DIR is reused, so running it again prints the same summary.
`down` removes the app through the cloud, then stops baetyl-core, the cloud and its broker; data
and logs stay in DIR. Guide: docs/quickstart.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp
import psutil
import yaml

from cloud.broker import node_limits_plugin
from cloud.broker.managed import BrokerError, find_mosquitto
from cloud.installer.dist import newest_wheel

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples/hello-native"
DEFAULT_DIR = ROOT / "var/demo"
NODE = "edge-demo"
NODE_LABELS = {"role": "gateway"}
APP = "hello"
SECRET = "hello-token"  # noqa: S105 - the secret's name
HOST = "127.0.0.1"
WHEEL_GLOB = "baetyl_py-*.whl"
WHEEL_SOURCES = ("agent", "cloud", "function_proxy")

CLOUD_START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 300.0
ONLINE_TIMEOUT = 90.0
RUNNING_TIMEOUT = 90.0
REMOVE_TIMEOUT = 30.0
CORE_STOP_TIMEOUT = 15.0
CLOUD_STOP_TIMEOUT = 25.0
APP_STOP_TIMEOUT = 12.0
POLL = 0.25
T = TypeVar("T")


class DemoError(Exception):
    """A step failed; the message says what happened and where to look."""


@dataclass(frozen=True)
class Ports:
    """What the demo listens on, all on 127.0.0.1."""

    api: int = 9004
    mqtt: int = 8883
    agent: int = 30050
    app: int = 8080


FLAGS = {
    "api": ("--api-port", "the cloud's REST API"),
    "mqtt": ("--mqtt-port", "the cloud's MQTT broker"),
    "agent": ("--agent-port", "baetyl-core's local API"),
    "app": ("--app-port", "the hello app"),
}


@dataclass(frozen=True)
class Demo:
    """One demo: every file under `var`, the ports, where the agent wheel comes from."""

    var: Path
    ports: Ports
    dist: Path
    build_wheel: bool
    python: str

    @property
    def cloud_dir(self) -> Path:
        return self.var / "cloud"

    @property
    def cloud_log(self) -> Path:
        return self.var / "cloud.log"

    @property
    def cloud_pid(self) -> Path:
        return self.var / "cloud.pid"

    @property
    def broker_config(self) -> Path:
        return self.cloud_dir / "mosquitto/mosquitto.conf"

    @property
    def broker_log(self) -> Path:
        return self.cloud_dir / "mosquitto/mosquitto.log"

    @property
    def state_file(self) -> Path:
        return self.var / "demo.json"

    @property
    def install_dir(self) -> Path:
        return self.var / "install"

    @property
    def app_file(self) -> Path:
        return self.var / "hello-app.yaml"

    @property
    def edge(self) -> Path:
        return self.var / "edge"

    @property
    def core_config(self) -> Path:
        return self.edge / "etc/baetyl/core.yml"

    @property
    def core_pid(self) -> Path:
        return self.edge / "var/run/baetyl-core.pid"

    @property
    def core_log(self) -> Path:
        return self.edge / "var/log/baetyl/core.log"

    @property
    def run_dir(self) -> Path:
        return self.edge / "var/lib/baetyl/run"

    @property
    def app_log(self) -> Path:
        return self.edge / "var/log/baetyl/default" / APP / "web-1.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    @property
    def agent_url(self) -> str:
        return f"http://{HOST}:{self.ports.agent}"

    @property
    def app_url(self) -> str:
        return f"http://{HOST}:{self.ports.app}/"


# ---------------------------------------------------------------------------------------------
# Progress lines


class Progress:
    """`[demo] step ... ok (1.2 s)` lines; a step's own output goes indented below its title."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._title: str | None = None
        self._broken = False

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Print the title, run the body, then `ok (seconds)` or `failed (seconds)`."""
        self._title, self._broken = title, False
        self._write(f"[demo] {title} ...")
        started = time.monotonic()
        outcome = "failed"
        try:
            yield
            outcome = "ok"
        finally:
            elapsed = time.monotonic() - started
            if self._broken:
                self._write(f"[demo] {title}: {outcome} ({elapsed:.1f} s)\n")
            else:
                self._write(f" {outcome} ({elapsed:.1f} s)\n")
            self._title = None

    def detail(self, line: str) -> None:
        """One line of a step's output, indented."""
        if self._title is not None and not self._broken:
            self._write("\n")
            self._broken = True
        self._write(f"    {line.rstrip()}\n")

    def say(self, text: str) -> None:
        """A line (or block) of its own."""
        self._write(f"{text}\n")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


# ---------------------------------------------------------------------------------------------
# Processes and ports (blocking: called through asyncio.to_thread)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not; one of our own children is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_from(pid_file: Path, *, program: str, marker: Path) -> psutil.Process | None:
    """The live process a pid file names, if it is `program` working on `marker`."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        process = psutil.Process(pid)
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    ours = any(Path(part).name == program for part in command[:2]) and str(marker) in command
    return process if ours and alive(pid) else None


def cloud_process(demo: Demo) -> psutil.Process | None:
    return process_from(demo.cloud_pid, program="baetyl-cloud", marker=demo.cloud_dir)


def core_process(demo: Demo) -> psutil.Process | None:
    return process_from(demo.core_pid, program="baetyl-core", marker=demo.core_config)


def broker_process(demo: Demo) -> psutil.Process | None:
    """The managed Mosquitto of this demo's cloud, if it runs."""
    config = str(demo.broker_config)
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if config in process.cmdline() and alive(process.pid):
                return process
    return None


def app_processes(demo: Demo) -> list[psutil.Process]:
    """Every live process of an app instance of this demo's node (found by its environment)."""
    prefix = f"{demo.run_dir}{os.sep}"
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            marker = process.environ().get("BAETYL_INSTANCE_DIR", "")
            if marker.startswith(prefix) and alive(process.pid):
                found.append(process)
    return found


def stop(process: psutil.Process, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended after `timeout` seconds."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)


def stop_groups(processes: list[psutil.Process], *, timeout: float) -> None:
    """SIGTERM the process groups of `processes`, SIGKILL what is left after `timeout` s."""
    groups = set()
    for process in processes:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(process.pid))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p.pid) for p in processes):
            time.sleep(0.1)
        if not any(alive(p.pid) for p in processes):
            return
    raise DemoError(f"could not stop app processes {[p.pid for p in processes]}")


def port_problem(port: int, what: str, flag: str) -> str | None:
    """Why 127.0.0.1:`port` cannot be used for `what` (who holds it), or None if it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        else:
            return None
    owner = port_owner(port)
    by = f" by {owner}" if owner else ""
    return f"port {HOST}:{port} for {what} is in use{by}: pass {flag} PORT (DEMO_ARGS='{flag} N')"


def port_owner(port: int) -> str | None:
    """`name (pid N)` of the process listening on `port`, when the system tells us."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
            and connection.pid
        ):
            with contextlib.suppress(psutil.Error):
                return f"{psutil.Process(connection.pid).name()} (pid {connection.pid})"
    return None


def spawn_detached(argv: list[str], *, log: Path, pid_file: Path) -> int:
    """Start `argv` in its own session, output appended to `log`; it outlives this script."""
    pid = os.posix_spawn(
        argv[0],
        argv,
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,  # a Ctrl-C in the terminal of `make demo` must not reach it
    )
    pid_file.write_text(f"{pid}\n", encoding="ascii")
    return pid


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"    ({path} cannot be read)"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty)"


def shown(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (shorter to read)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# ---------------------------------------------------------------------------------------------
# Settings and the state file


def load_ports(demo_var: Path, asked: dict[str, int | None]) -> Ports:
    """The ports: those DIR was set up with (demo.json), else the flags, else the defaults."""
    state = demo_var / "demo.json"
    try:
        recorded = Ports(**json.loads(state.read_text(encoding="utf-8"))["ports"])
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(
            f"{shown(state)} is damaged ({exc}): remove it, or the whole directory"
        ) from None
    given = {key: value for key, value in asked.items() if value is not None}
    if recorded is None or not (demo_var / "cloud").exists():  # nothing set up with them yet
        return replace(recorded or Ports(), **given)
    # The node's core.yml names the broker and its local API; the cloud may be running. The
    # app's port is only in the app spec, applied again on every run.
    different = [
        f"{FLAGS[key][0]} {value} (set up with {getattr(recorded, key)})"
        for key, value in given.items()
        if key != "app" and value != getattr(recorded, key)
    ]
    if different:
        raise DemoError(
            f"{shown(demo_var)} was set up with other ports: {', '.join(different)}. Keep its "
            f"ports, or start over: make demo-stop && rm -rf {shown(demo_var)}"
        )
    return replace(recorded, **{key: value for key, value in given.items() if key == "app"})


def command(demo: Demo, action: str) -> str:
    """How the user runs `action` on this demo again."""
    if demo.var == DEFAULT_DIR:
        return "make demo" if action == "up" else "make demo-stop"
    return f"{shown(BIN / 'python')} tools/demo.py {action} --dir {shown(demo.var)}"


def admin_token(demo: Demo) -> str:
    """The admin token the cloud wrote at its first start."""
    return (demo.cloud_dir / "admin.token").read_text(encoding="ascii").strip()


def save_state(demo: Demo) -> None:
    demo.var.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"ports": asdict(demo.ports)}, indent=2) + "\n"
    demo.state_file.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# up


class Cloud:
    """The demo cloud's REST API, as an admin."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session = session
        self.url = url
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with self._session.request(
                method, self.url + path, json=body, headers=headers
            ) as answer:
                return answer.status, await answer.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise DemoError(f"{method} {self.url}{path} failed: {exc}") from exc

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        if status != 200:
            raise DemoError(f"{method} {path}: {status} {answer}")
        return answer


def missing_packages() -> list[str]:
    """The Debian packages the demo needs that are not installed."""
    missing = []
    try:
        find_mosquitto()
    except BrokerError:
        missing.append("mosquitto")
    missing += node_limits_plugin.missing_packages()  # the broker's plugin is built at start
    if shutil.which("curl") is None and shutil.which("wget") is None:
        missing.append("curl")
    return missing


async def check_machine(progress: Progress) -> str:
    """Install Mosquitto, the plugin's build tools and curl with apt-get if missing; return the
    download method for the node."""
    missing = await asyncio.to_thread(missing_packages)
    if missing:
        progress.detail(f"missing: {', '.join(missing)}; installing with apt-get (tools/apt.sh)")
        script = f'source "{ROOT}/tools/apt.sh" && apt_install "$@"'
        code = await run_streamed(["bash", "-c", script, "apt", *missing], progress=progress)
        if code != 0:
            raise DemoError(f"could not install {' '.join(missing)}; install them and run again")
    return "curl" if shutil.which("curl") else "wget"


async def run_streamed(
    argv: list[str],
    *,
    progress: Progress,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    limit: float = INSTALL_TIMEOUT,
    show: Callable[[str], bool] = lambda line: True,
) -> int:
    """Run a command; its exit code. Output lines that `show` picks are shown as details, all
    of them are appended to `log`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(limit):
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if show(line):
                    progress.detail(line)
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DemoError(f"{argv[0]} did not finish within {limit:.0f} s") from None
    finally:
        if log is not None:
            await asyncio.to_thread(_append, log, lines)
    return code


def _is_error(line: str) -> bool:
    return "error" in line.lower()


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def wheel_is_current(dist: Path) -> bool:
    """Whether dist/ holds a wheel newer than every source file that goes into it."""
    wheels = list(dist.glob(WHEEL_GLOB))
    if not wheels:
        return False
    built = max(path.stat().st_mtime for path in wheels)
    sources = [ROOT / "setup.cfg", ROOT / "pyproject.toml"]
    for package in WHEEL_SOURCES:
        sources.extend(p for p in (ROOT / package).rglob("*") if p.suffix in (".py", ".tmpl"))
    return all(path.stat().st_mtime <= built for path in sources if path.exists())


async def ensure_wheel(demo: Demo, progress: Progress) -> None:
    """The agent wheel the cloud serves: built with `make wheel` when the sources are newer."""
    if not demo.build_wheel:
        if not await asyncio.to_thread(lambda: any(demo.dist.glob(WHEEL_GLOB))):
            raise DemoError(f"no {WHEEL_GLOB} in {demo.dist}: build one with `make wheel`")
        return
    if await asyncio.to_thread(wheel_is_current, demo.dist):
        return
    with progress.step("building the agent wheel the cloud serves to nodes (make wheel)"):
        make = ["make", "--no-print-directory", "-C", str(ROOT), "wheel"]
        if await run_streamed(make, progress=progress, limit=600) != 0:
            raise DemoError("`make wheel` failed (its output is above)")


async def ensure_cloud(demo: Demo, progress: Progress, session: aiohttp.ClientSession) -> int:
    """The running cloud's pid: the one already running in DIR, or a new one."""
    running = await asyncio.to_thread(cloud_process, demo)
    if running is not None and await healthy(session, demo.url):
        progress.say(f"[demo] the cloud already runs (pid {running.pid}, {demo.url})")
        return running.pid
    if running is not None:
        raise DemoError(
            f"baetyl-cloud (pid {running.pid}) runs but does not answer on {demo.url}; "
            f"see {shown(demo.cloud_log)}, or run {command(demo, 'down')}"
        )
    title = f"starting the cloud (REST {HOST}:{demo.ports.api}, broker {HOST}:{demo.ports.mqtt})"
    with progress.step(title):
        for key in ("api", "mqtt"):
            flag, what = FLAGS[key]
            problem = await asyncio.to_thread(port_problem, getattr(demo.ports, key), what, flag)
            if problem:
                raise DemoError(problem)
        argv = [
            str(BIN / "baetyl-cloud"), "serve", "--data-dir", str(demo.cloud_dir),
            "--listen", f"{HOST}:{demo.ports.api}", "--mqtt-listen", f"{HOST}:{demo.ports.mqtt}",
            "--dist-dir", str(demo.dist),
        ]  # fmt: skip
        pid = await asyncio.to_thread(
            spawn_detached, argv, log=demo.cloud_log, pid_file=demo.cloud_pid
        )
        why = await wait_started(session, demo.url, pid)
        if why is not None:
            log = await asyncio.to_thread(tail, demo.cloud_log)
            raise DemoError(f"the cloud did not start ({why}); {shown(demo.cloud_log)}:\n{log}")
    return pid


async def wait_started(session: aiohttp.ClientSession, url: str, pid: int) -> str | None:
    """None once the cloud answers on `url`; else why it does not."""

    async def outcome() -> str | None:
        if await healthy(session, url):
            return "up"
        return None if await asyncio.to_thread(alive, pid) else "exited"

    try:
        if await eventually(outcome, limit=CLOUD_START_TIMEOUT) == "exited":
            return "baetyl-cloud exited"
    except TimeoutError:
        return f"no answer within {CLOUD_START_TIMEOUT:.0f} s"
    return None


async def eventually(check: Callable[[], Awaitable[T | None]], *, limit: float) -> T:
    """The first truthy result of `check()`, asked every POLL s; TimeoutError after `limit` s."""
    async with asyncio.timeout(limit):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(POLL)


async def healthy(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as answer:
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def ensure_node(cloud: Cloud, progress: Progress) -> bool:
    """Create the node (True), or make sure the existing one carries the labels (False)."""
    status, node = await cloud.call("GET", f"/v1/nodes/{NODE}")
    labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
    if status == 404:
        with progress.step(f"creating node {NODE} (labels {labels}) through the REST API"):
            body = {"name": NODE, "labels": NODE_LABELS, "description": "made by make demo"}
            await cloud.ok("POST", "/v1/nodes", body)
        return True
    if status != 200:
        raise DemoError(f"GET /v1/nodes/{NODE}: {status} {node}")
    if any(node["labels"].get(k) != v for k, v in NODE_LABELS.items()):
        with progress.step(f"labelling node {NODE} {labels} again"):
            await cloud.ok("PUT", f"/v1/nodes/{NODE}", {"labels": node["labels"] | NODE_LABELS})
    return False


async def ensure_installed(
    demo: Demo, cloud: Cloud, progress: Progress, *, fresh_node: bool, method: str
) -> int:
    """baetyl-core's pid, once the node is installed under DIR/edge and online."""
    core = await asyncio.to_thread(core_process, demo)
    if fresh_node and await asyncio.to_thread(demo.edge.exists):
        # An installation of an earlier node of that name: its certificate is no longer valid.
        with progress.step(f"removing {shown(demo.edge)}, left from an earlier cloud or node"):
            await stop_edge(demo, core)
            await asyncio.to_thread(shutil.rmtree, demo.edge)
        core = None
    if core is not None:
        with progress.step(f"baetyl-core already runs (pid {core.pid}); checking it is online"):
            await wait_online(cloud)
        return core.pid
    flag, what = FLAGS["agent"]
    problem = await asyncio.to_thread(port_problem, demo.ports.agent, what, flag)
    if problem:
        raise DemoError(problem)
    await refresh_agent(demo, progress)
    install = (await cloud.ok("GET", f"/v1/nodes/{NODE}/init?method={method}"))["cmd"]
    env = {
        **os.environ,
        "BAETYL_PREFIX": str(demo.edge),
        "BAETYL_NO_SYSTEMD": "1",
        "BAETYL_API_LISTEN": f"{HOST}:{demo.ports.agent}",
        "BAETYL_PYTHON": demo.python,
    }
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache/baetyl-py/pip"))
    env.pop("VIRTUAL_ENV", None)
    await asyncio.to_thread(demo.install_dir.mkdir, parents=True, exist_ok=True)
    title = f"installing node {NODE} here (prefix {shown(demo.edge)}, no systemd)"
    with progress.step(title):
        progress.detail(f"$ {install.split('token=')[0]}token=...' && sh baetyl-install.sh")
        log = demo.var / "install.log"
        code = await run_streamed(
            ["sh", "-c", install],
            progress=progress,
            cwd=demo.install_dir,
            env=env,
            log=log,
            show=lambda line: line.startswith("==>") or _is_error(line),
        )
        if code != 0:
            raise DemoError(
                f"the install command failed (exit {code}); all its output is in {shown(log)}, "
                f"baetyl-core's log in {shown(demo.core_log)}. The end of the output:\n"
                f"{await asyncio.to_thread(tail, log, 15)}\nIf {shown(demo.var)} is in a mixed "
                f"state, start over: {command(demo, 'down')} && rm -rf {shown(demo.var)}"
            )
    core = await asyncio.to_thread(core_process, demo)
    if core is None:
        raise DemoError(f"baetyl-core is not running; see {shown(demo.core_log)}")
    return core.pid


def stale_agent(demo: Demo) -> Path | None:
    """The served wheel, if it is newer than the agent installed in the node's virtualenv.

    The install script keeps an existing virtualenv, and pip keeps an installed version: without
    this a node set up before a code change would go on running the old code.
    """
    wheel = newest_wheel(demo.dist)
    infos = list(demo.edge.glob("venv/lib/python*/site-packages/baetyl_py-*.dist-info"))
    if wheel is None or not infos:
        return None
    installed = max(info.stat().st_mtime for info in infos)
    return wheel if wheel.stat().st_mtime > installed else None


async def refresh_agent(demo: Demo, progress: Progress) -> None:
    """Reinstall the agent into the node's virtualenv when the wheel is newer."""
    wheel = await asyncio.to_thread(stale_agent, demo)
    if wheel is None:
        return
    venv = demo.edge / "venv"
    with progress.step(f"updating the agent in {shown(venv)} (the wheel is newer)"):
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet"]
        for extra in (["--no-deps", "--force-reinstall"], []):  # then any new dependency
            argv = [*pip, *extra, str(wheel)]
            log = demo.var / "install.log"
            code = await run_streamed(argv, progress=progress, log=log, show=_is_error)
            if code != 0:
                raise DemoError(f"pip could not install {wheel} into {shown(venv)}")


async def wait_online(cloud: Cloud) -> None:
    """Until the node is online in the cloud (an agent may be backing off from an outage)."""

    async def online() -> bool:
        return bool((await cloud.ok("GET", f"/v1/nodes/{NODE}")).get("ready") == 1)

    try:
        await eventually(online, limit=ONLINE_TIMEOUT)
    except TimeoutError:
        raise DemoError(f"node {NODE} did not come online within {ONLINE_TIMEOUT:.0f} s") from None


def demo_app(port: int) -> dict[str, Any]:
    """examples/hello-native/app.yaml, listening on 127.0.0.1:`port` instead of *:8080."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLE / "app.yaml").read_text(encoding="utf-8"))
    spec = copy.deepcopy(spec)
    for service in spec["services"]:
        env = [e for e in service.get("env", []) if e["name"] not in ("HELLO_PORT", "HELLO_HOST")]
        service["env"] = [
            *env,
            {"name": "HELLO_PORT", "value": str(port)},
            {"name": "HELLO_HOST", "value": HOST},
        ]
        for published in service.get("ports", []):
            published["containerPort"] = published["hostPort"] = port
        for probe in ("readinessProbe", "livenessProbe"):
            if "httpGet" in service.get(probe, {}):
                service[probe]["httpGet"]["port"] = port
    return spec


def write_app_file(demo: Demo) -> None:
    header = (
        "# examples/hello-native/app.yaml as `make demo` applies it: listening on "
        f"{HOST}:{demo.ports.app} only.\n"
    )
    body = yaml.safe_dump(demo_app(demo.ports.app), sort_keys=False)
    demo.app_file.write_text(header + body, encoding="utf-8")


async def apply_example(demo: Demo, cloud: Cloud, progress: Progress) -> str:
    """Apply the configurations, the secret (once) and the app; the app's version."""
    with progress.step(f"deploying {shown(EXAMPLE)} (2 configurations, a secret, the app)"):
        env = {**os.environ, "BAETYL_URL": cloud.url, "BAETYL_TOKEN": cloud.token}
        config = EXAMPLE / "config.yaml"
        await ctl(["config", "apply", "-f", shown(config)], env=env, progress=progress)
        status, _ = await cloud.call("GET", f"/v1/secrets/{SECRET}")
        if status == 404:
            token = secrets.token_hex(16)
            await cloud.ok("POST", "/v1/secrets", {"name": SECRET, "data": {"token": token}})
            progress.detail(f"secret/{SECRET} created (a random token)")
        else:
            progress.detail(f"secret/{SECRET} kept")
        await asyncio.to_thread(write_app_file, demo)
        processes = await asyncio.to_thread(app_processes, demo)
        if not processes:  # our own app holds the port when it runs already
            flag, what = FLAGS["app"]
            problem = await asyncio.to_thread(port_problem, demo.ports.app, what, flag)
            if problem:
                raise DemoError(problem)
        await ctl(["app", "apply", "-f", shown(demo.app_file)], env=env, progress=progress)
        app = await cloud.ok("GET", f"/v1/apps/{APP}")
    return str(app["version"])


async def ctl(args: list[str], *, env: dict[str, str], progress: Progress) -> None:
    progress.detail(f"$ baetylctl {' '.join(args)}")
    code = await run_streamed([str(BIN / "baetylctl"), *args], progress=progress, env=env)
    if code != 0:
        raise DemoError(f"baetylctl {' '.join(args)} failed (exit {code})")


async def wait_running(demo: Demo, cloud: Cloud, version: str, progress: Progress) -> Any:
    """The app's stats once the node reports the version Running."""
    last: Any = None

    async def running() -> Any:
        nonlocal last
        node = await cloud.ok("GET", f"/v1/nodes/{NODE}")
        stats = node.get("report", {}).get("appstats", [])
        last = next((s for s in stats if s.get("name") == APP), None)
        if last and last.get("version") == version and last["status"] == "Running":
            return last
        return None

    with progress.step(f"waiting until node {NODE} reports {APP} Running"):
        try:
            return await eventually(running, limit=RUNNING_TIMEOUT)
        except TimeoutError:
            seen = f"{last['status']}: {last.get('cause') or '-'}" if last else "nothing yet"
            raise DemoError(
                f"{APP} did not report Running within {RUNNING_TIMEOUT:.0f} s (last report: "
                f"{seen}); see {shown(demo.app_log)} and {shown(demo.core_log)}"
            ) from None


async def fetch_page(session: aiohttp.ClientSession, url: str) -> str:
    """GET the app's page (a few tries: Running means ready, but be lenient)."""
    problem = ""
    for _ in range(20):
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
                text = await answer.text()
                if answer.status == 200:
                    return text
                problem = f"{answer.status} {text.strip()}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        await asyncio.sleep(0.25)
    raise DemoError(f"GET {url} failed: {problem}")


async def up(demo: Demo, progress: Progress) -> None:
    started = time.monotonic()
    with progress.step("checking this machine (mosquitto, gcc, mosquitto-dev, curl or wget)"):
        method = await check_machine(progress)
    await asyncio.to_thread(save_state, demo)
    await ensure_wheel(demo, progress)
    async with aiohttp.ClientSession() as session:
        cloud_pid = await ensure_cloud(demo, progress, session)
        cloud = Cloud(session, demo.url, await asyncio.to_thread(admin_token, demo))
        fresh = await ensure_node(cloud, progress)
        core_pid = await ensure_installed(demo, cloud, progress, fresh_node=fresh, method=method)
        version = await apply_example(demo, cloud, progress)
        stats = await wait_running(demo, cloud, version, progress)
        with progress.step(f"asking the app: GET {demo.app_url}"):
            page = await fetch_page(session, demo.app_url)
    broker = await asyncio.to_thread(broker_process, demo)
    pids = [i.get("pid") for i in stats.get("instances", {}).values() if i.get("pid")]
    summary = Summary(demo, cloud_pid, broker.pid if broker else None, core_pid, version, pids)
    progress.say(summary.text(page, time.monotonic() - started))


@dataclass(frozen=True)
class Summary:
    """What runs, and how to look at it."""

    demo: Demo
    cloud_pid: int
    broker_pid: int | None
    core_pid: int
    version: str
    app_pids: list[int]

    def text(self, page: str, elapsed: float) -> str:
        demo = self.demo
        ctl = shown(BIN / "baetylctl")
        broker = f"mosquitto pid {self.broker_pid}" if self.broker_pid else "mosquitto"
        app_pids = ", ".join(str(pid) for pid in self.app_pids) or "-"
        logs = [
            (demo.cloud_log, "the cloud (JSON lines)"),
            (demo.broker_log, "its broker"),
            (demo.var / "install.log", "the install command's output"),
            (demo.core_log, "baetyl-core (JSON lines)"),
            (demo.app_log, "the app's output"),
        ]
        greeting = "\n".join(f"    {line}" for line in page.strip().splitlines())
        return "\n".join(
            [
                "",
                f"[demo] ready in {elapsed:.1f} s. Running, everything under {shown(demo.var)}/:",
                f"  cloud  baetyl-cloud pid {self.cloud_pid}, REST API {demo.url}, "
                f"broker mqtts://{HOST}:{demo.ports.mqtt} ({broker})",
                f"  node   {NODE} ({', '.join(f'{k}={v}' for k, v in NODE_LABELS.items())}): "
                f"baetyl-core pid {self.core_pid}, local API {demo.agent_url}",
                f"  app    {APP} version {self.version}: Running, pid {app_pids}, {demo.app_url}",
                "",
                "The app answers:",
                f"  curl {demo.app_url}",
                greeting,
                "",
                "Look at it:",
                f"  export BAETYL_URL={demo.url} "
                f"BAETYL_TOKEN=$(cat {shown(demo.cloud_dir / 'admin.token')})",
                *aligned(
                    [
                        (f"{ctl} node get {NODE} -o yaml", "# its desired and reported state"),
                        (f"{ctl} app get {APP} -o yaml", "# the app as the cloud stores it"),
                        (
                            f"{ctl} node logs {NODE} {APP}",
                            "# the app's output, from the node",
                        ),
                        (f"curl {demo.agent_url}/node/stats", "# the agent's local API"),
                    ]
                ),
                "",
                "Logs:",
                *aligned([(shown(path), what) for path, what in logs]),
                "",
                f"Change the greeting in {shown(EXAMPLE / 'config.yaml')}, then",
                f"  {ctl} config apply -f {shown(EXAMPLE / 'config.yaml')}",
                f"and the node rolls out a new version of {APP} (curl again in a few seconds).",
                f"Stop everything: {command(demo, 'down')}",
            ]
        )


def aligned(rows: list[tuple[str, str]]) -> list[str]:
    """Two columns, indented by two spaces."""
    width = max(len(left) for left, _ in rows)
    return [f"  {left:<{width}}  {right}" for left, right in rows]


# ---------------------------------------------------------------------------------------------
# down


async def stop_edge(demo: Demo, core: psutil.Process | None) -> None:
    """Stop baetyl-core, then whatever app processes it left running."""
    if core is not None:
        await asyncio.to_thread(stop, core, timeout=CORE_STOP_TIMEOUT)
    left = await asyncio.to_thread(app_processes, demo)
    if left:
        await asyncio.to_thread(stop_groups, left, timeout=APP_STOP_TIMEOUT)


async def remove_app(demo: Demo, progress: Progress) -> None:
    """Delete the app through the cloud and wait until the node stopped it and said so."""
    async with aiohttp.ClientSession() as session:
        cloud = Cloud(session, demo.url, await asyncio.to_thread(admin_token, demo))
        status, answer = await cloud.call("DELETE", f"/v1/apps/{APP}")
        if status not in (200, 404):
            raise DemoError(f"DELETE /v1/apps/{APP}: {status} {answer}")

        async def gone() -> bool:
            node = await cloud.ok("GET", f"/v1/nodes/{NODE}")
            reported = node.get("report", {}).get("apps", [])
            running = await asyncio.to_thread(app_processes, demo)
            return not running and all(app.get("name") != APP for app in reported)

        try:
            await eventually(gone, limit=REMOVE_TIMEOUT)
        except TimeoutError:
            progress.detail(f"the node did not stop {APP} within {REMOVE_TIMEOUT:.0f} s")


async def down(demo: Demo, progress: Progress) -> None:
    cloud = await asyncio.to_thread(cloud_process, demo)
    core = await asyncio.to_thread(core_process, demo)
    apps = await asyncio.to_thread(app_processes, demo)
    broker = await asyncio.to_thread(broker_process, demo)
    if not (cloud or core or apps or broker):
        progress.say(f"[demo] nothing of the demo runs in {shown(demo.var)}")
        return
    if cloud is not None and core is not None and apps:
        with progress.step(f"removing app {APP} through the cloud; the node stops it"):
            await remove_app(demo, progress)
    if core is not None:
        with progress.step(f"stopping baetyl-core (pid {core.pid})"):
            await asyncio.to_thread(stop, core, timeout=CORE_STOP_TIMEOUT)
    left = await asyncio.to_thread(app_processes, demo)
    if left:
        with progress.step(f"stopping {len(left)} app process(es) still running"):
            await asyncio.to_thread(stop_groups, left, timeout=APP_STOP_TIMEOUT)
    if cloud is not None:
        with progress.step(f"stopping the cloud (pid {cloud.pid}) and its broker"):
            await asyncio.to_thread(stop, cloud, timeout=CLOUD_STOP_TIMEOUT)
    broker = await asyncio.to_thread(broker_process, demo)
    if broker is not None:
        with progress.step(f"stopping the broker left behind (pid {broker.pid})"):
            await asyncio.to_thread(stop, broker, timeout=10)
    await asyncio.to_thread(demo.cloud_pid.unlink, missing_ok=True)
    progress.say(
        f"[demo] stopped. Data and logs stay in {shown(demo.var)}/: `{command(demo, 'up')}` "
        f"starts it again where it was, `rm -rf {shown(demo.var)}` forgets it"
    )


# ---------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/demo.py",
        description="The Baetyl-Py demo: a cloud, a node on this machine, the hello-native app.",
    )
    parser.add_argument("action", choices=["up", "down"], help="start (or reuse) / stop it")
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help="where everything lives (default var/demo in the source tree)",
    )
    for key, (flag, what) in FLAGS.items():
        parser.add_argument(
            flag,
            dest=key,
            type=int,
            metavar="PORT",
            help=f"port of {what} on {HOST} (default {getattr(Ports(), key)})",
        )
    parser.add_argument(
        "--dist-dir",
        type=Path,
        metavar="DIR",
        help="where the agent wheel is (default dist/, built with `make wheel` when stale)",
    )
    parser.add_argument(
        "--python",
        default=os.environ.get("BAETYL_PYTHON", "python3"),
        help="the Python >= 3.11 the node's virtualenv is made with (default python3)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress(sys.stdout)
    var = args.dir.absolute()
    try:
        ports = load_ports(var, {key: getattr(args, key) for key in FLAGS})
    except DemoError as exc:
        return fail(exc)
    demo = Demo(
        var=var,
        ports=ports,
        dist=(args.dist_dir or ROOT / "dist").absolute(),
        build_wheel=args.dist_dir is None,
        python=args.python,
    )
    left = (
        f"[demo] anything already started keeps running (logs in {shown(var)}/); "
        f"`{command(demo, 'down')}` stops it"
    )
    try:
        asyncio.run(up(demo, progress) if args.action == "up" else down(demo, progress))
    except DemoError as exc:
        return fail(exc, left if args.action == "up" else "")
    except KeyboardInterrupt:
        progress.say(f"\n[demo] interrupted. {left}")
        return 130
    return 0


def fail(error: DemoError, note: str = "") -> int:
    sys.stdout.flush()
    sys.stderr.write(f"[demo] error: {error}\n{note}\n" if note else f"[demo] error: {error}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
