"""What the edge benchmarks share: a real cloud, a real agent, their logs, and cleanup.

`bench/agent.py` (footprint and deploy latency) and `bench/push_vs_poll.py` (REST change →
process running, push against polling) both start a `baetyl-cloud serve` with its managed
Mosquitto and one or more `baetyl-core` processes with certificates from the cloud's CA, read
the agent's JSON log to time what it did, and must leave no process behind whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import functools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cloud.pki.ca import CertificateAuthority, write_certificate_files  # noqa: E402
from tests.harness.common import HarnessError, free_port, wait_for_port  # noqa: E402
from tools.kit import procs  # noqa: E402
from tools.kit.cloud import admin_token, serve_args, start_serve  # noqa: E402
from tools.kit.procs import KitError  # noqa: E402
from tools.kit.progress import Progress  # noqa: E402
from tools.kit.rest import Rest as KitRest  # noqa: E402
from tools.kit.rest import RestError  # noqa: E402
from tools.kit.waiting import Died, WaitTimeout, eventually  # noqa: E402

__all__ = ["Progress", "eventually"]  # re-exported for the bench scripts

MB = 1024 * 1024
Json = dict[str, Any]
T = TypeVar("T")


class Checked(Protocol):
    """A bench plan that can say what makes it impossible to run."""

    def problem(self) -> str | None:
        """A message for the command line, or None when the plan can run."""
        ...


P = TypeVar("P", bound=Checked)

BIN = Path(sys.executable).parent
NAMESPACE = "default"
NODE = "bench-edge"
APP_MARKER = "BAETYL_INSTANCE_DIR"


class BenchError(RuntimeError):
    """The benchmark cannot go on: a process died, a round timed out, the agent failed an app."""


# -- processes ------------------------------------------------------------------------------


class Reaper:
    """Every process this benchmark started, and app run directories, killed on the way out.

    Processes are held as psutil handles (pid and start time), so a pid reused meanwhile is never
    signalled. `cleanup` is idempotent and synchronous: it also runs after the event loop is gone.
    """

    def __init__(self) -> None:
        self._processes: list[tuple[str, psutil.Process]] = []
        self._run_dirs: list[Path] = []

    def track(self, what: str, pid: int) -> None:
        """Remember a process to stop at the end."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self._processes.append((what, psutil.Process(pid)))

    def track_apps(self, run_dir: Path) -> None:
        """Remember an agent's run directory: its app processes are killed at the end."""
        self._run_dirs.append(run_dir)

    def kill_apps(self) -> int:
        """SIGKILL the process group of every app under a tracked run directory; how many."""
        prefixes = tuple(f"{directory}{os.sep}" for directory in self._run_dirs)
        if not prefixes:
            return 0
        killed = 0
        for process in psutil.process_iter():
            try:
                if not process.environ().get(APP_MARKER, "").startswith(prefixes):
                    continue
                os.killpg(process.pid, signal.SIGKILL)
                killed += 1
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        return killed

    def cleanup(self) -> None:
        """Stop the agent, kill its apps, stop the cloud, then its broker if it outlived it."""
        for kind in ("agent", "cloud", "broker"):
            for what, process in self._processes:
                if what == kind:
                    procs.stop(process, timeout=15.0 if what == "cloud" else 10.0)
            if kind == "agent":
                self.kill_apps()


@dataclasses.dataclass(frozen=True)
class Cloud:
    """A running `baetyl-cloud serve` with its managed broker."""

    url: str
    token: str
    mqtt_port: int
    data_dir: Path
    log_file: Path


@contextlib.asynccontextmanager
async def cloud_process(work: Path, reaper: Reaper) -> AsyncIterator[Cloud]:
    """`baetyl-cloud serve` with its managed Mosquitto on loopback ports."""
    data_dir = work / "cloud"
    port, mqtt_port = free_port(), free_port()
    url, log_file = f"http://127.0.0.1:{port}", work / "cloud.log"
    argv = serve_args(
        data_dir, port, "--mqtt-listen", f"127.0.0.1:{mqtt_port}", log_level="warning"
    )
    try:
        # At warning level the cloud does not log its link: its broker's port is waited for.
        process = await start_serve(argv, url=url, log_file=log_file, limit=60, linked=False)
        reaper.track("cloud", process.pid)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", mqtt_port, timeout=30)
        for child in psutil.Process(process.pid).children():
            reaper.track("broker", child.pid)  # the cloud stops it; tracked in case it dies
    except (KitError, HarnessError, OSError, psutil.Error) as exc:
        raise BenchError(f"the cloud did not start: {exc}\n{procs.tail(log_file, 30)}") from exc
    try:
        yield Cloud(url, admin_token(data_dir), mqtt_port, data_dir, log_file)
    finally:
        await procs.stop_child(process, grace=15)


@contextlib.asynccontextmanager
async def cloud_with_rest(work: Path, reaper: Reaper) -> AsyncIterator[tuple[Cloud, Rest]]:
    """`cloud_process` and an admin REST client of it, closed in turn afterwards."""
    async with (
        cloud_process(work, reaper) as cloud,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {cloud.token}"}) as session,
    ):
        yield cloud, Rest(cloud, session)


def write_core_config(
    directory: Path,
    cloud: Cloud,
    *,
    api: bool,
    node: str = NODE,
    sections: dict[str, Json] | None = None,
) -> Path:
    """Node certificate from the cloud's CA and a core.yml, defaults but for paths; its path.

    `sections` are merged into the core.yml's sections (e.g. `{"sync": {"mode": "poll"}}`).
    """
    pki = cloud.data_dir / "pki"
    ca = CertificateAuthority.load((pki / "ca.pem").read_bytes(), (pki / "ca.key").read_bytes())
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = write_certificate_files(
        directory, "node", ca.issue_client(f"{NAMESPACE}.{node}")
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    config: dict[str, Json] = {
        "node": {"ca": str(ca_file), "cert": str(cert_file), "key": str(key_file)},
        "cloud": {"mqtt": f"mqtts://127.0.0.1:{cloud.mqtt_port}"},
        "store": {"dir": str(directory / "store")},
        "run": {"dir": str(directory / "run")},
        "objects": {"dir": str(directory / "objects")},
        "log": {"dir": str(directory / "log"), "level": "info", "format": "json"},
        "api": {"listen": f"127.0.0.1:{free_port()}" if api else False},
    }
    for section, values in (sections or {}).items():
        config[section] = {**config.get(section, {}), **values}
    path = directory / "core.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class AgentLog:
    """The agent's stderr, read as it grows: JSON log records and `-X importtime` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Json] = []
        self.imported: set[str] = set()
        """Every module the agent imported, so far."""
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        """Read what was written since the last call."""
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.records.append(json.loads(line))
            elif line.startswith("import time:"):
                fields = line.split("|")
                if len(fields) == 3 and fields[1].strip().isdigit():
                    self.imported.add(fields[2].strip())

    def since(self, mark: int) -> list[Json]:
        """Records after the first `mark` ones (take `len(records)` as a mark)."""
        self.poll()
        return self.records[mark:]

    def tail(self) -> str:
        """The last lines, for error messages."""
        return procs.tail(self.path, 30)


@dataclasses.dataclass
class Agent:
    """A running `baetyl-core` process."""

    pid: int
    config: Path
    log: AgentLog


@contextlib.asynccontextmanager
async def agent_process(
    config: Path, reaper: Reaper, *, trace_imports: bool = False
) -> AsyncIterator[Agent]:
    """`baetyl-core -c config`; waits until its link to the cloud is up.

    With `trace_imports` the interpreter logs every import (`-X importtime`) to the same file.
    """
    log_file = config.parent / "core.log"
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if trace_imports:
        environment["PYTHONPROFILEIMPORTTIME"] = "1"
    reaper.track_apps(config.parent / "run")
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "baetyl-core"),
            "-c",
            str(config),
            stdout=log,
            stderr=log,
            env=environment,
            start_new_session=True,
        )
    reaper.track("agent", process.pid)
    agent = Agent(process.pid, config, AgentLog(log_file))
    try:

        def link_up() -> bool | None:
            if process.returncode is not None:
                raise BenchError(f"baetyl-core exited:\n{agent.log.tail()}")
            return any(r.get("message") == "cloud link up" for r in agent.log.since(0)) or None

        await eventually(link_up, limit=60, what="the agent's link to the cloud")
        yield agent
    finally:
        await procs.stop_child(process, grace=10)
        reaper.kill_apps()


def app_processes(agent_pid: int) -> dict[str, int]:
    """App name → live processes the agent started for it (its children)."""
    found: dict[str, int] = {}
    try:
        children = psutil.Process(agent_pid).children()
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            name = child.environ().get("BAETYL_APP_NAME")
            alive = child.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            continue
        if name and alive:
            found[name] = found.get(name, 0) + 1
    return found


# -- the cloud's REST API ------------------------------------------------------------------


class Rest(KitRest):
    """The cloud's REST API as its admin, with the calls the edge benchmarks make."""

    def __init__(self, cloud: Cloud, session: aiohttp.ClientSession) -> None:
        super().__init__(session, cloud.url, cloud.token)

    async def call(self, method: str, path: str, body: Any = None) -> Any:  # type: ignore[override]
        """One call; its body, or BenchError unless it answered 200."""
        try:
            status, answer = await super().call(method, path, body)
        except RestError as exc:
            raise BenchError(str(exc)) from None
        if status != 200:
            raise BenchError(f"{method} {path}: {status} {answer}")
        return answer

    async def create_apps(self, names: list[str], label: str) -> None:
        """Native `sleep infinity` apps placed on nodes labelled `label=on`."""
        sleep = shutil.which("sleep") or "/bin/sleep"
        for name in names:
            body = {
                "name": name,
                "mode": "native",
                "selector": f"{label}=on",
                "services": [{"name": "main", "command": [sleep, "infinity"]}],
            }
            await self.call("POST", "/v1/apps", body)

    async def set_labels(self, labels: dict[str, str], node: str = NODE) -> None:
        """Replace the node's labels (its apps are re-matched in one desired change)."""
        await self.call("PUT", f"/v1/nodes/{node}", {"name": node, "labels": labels})


# -- measurements ---------------------------------------------------------------------------


async def sample_memory(pid: int, samples: int) -> Json:
    """RSS, USS and PSS of one process, sampled once a second; medians and the top RSS, in MB."""
    process = psutil.Process(pid)
    rss: list[float] = []
    uss: list[float] = []
    pss: list[float] = []
    for index in range(samples):
        if index:
            await asyncio.sleep(1.0)
        rss.append(process.memory_info().rss / MB)
        with contextlib.suppress(psutil.AccessDenied):
            full = process.memory_full_info()
            uss.append(full.uss / MB)
            pss.append(full.pss / MB)
    return {
        "rss_mb": statistics.median(rss),
        "rss_max_mb": max(rss),
        "uss_mb": statistics.median(uss) if uss else None,
        "pss_mb": statistics.median(pss) if pss else None,
        "samples": samples,
    }


async def measure_cpu(pid: int, window: float) -> Json:
    """CPU time (user + system, all threads) of one process over `window` seconds."""
    process = psutil.Process(pid)
    before, started = process.cpu_times(), time.monotonic()
    await asyncio.sleep(window)
    after, wall = process.cpu_times(), time.monotonic() - started
    used = (after.user - before.user) + (after.system - before.system)
    return {"window_s": wall, "cpu_s": used, "percent_one_core": 100 * used / wall}


def record_time(record: Json) -> float:
    """A log record's wall-clock time (the agent writes ISO 8601 with microseconds)."""
    return datetime.datetime.fromisoformat(str(record["time"])).timestamp()


def all_running(agent_pid: int, wanted: set[str]) -> bool | None:
    """True when every app in `wanted` has a live process; None (keep waiting) otherwise."""
    running = app_processes(agent_pid)
    return all(running.get(name) for name in wanted) or None


def counts(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive counts, ascending."""
    try:
        values = tuple(sorted(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,50, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive counts, got {text!r}")
    return values


def percentiles(samples: list[float]) -> Json:
    """Median, nearest-rank p90 and p99, min and max."""
    ordered = sorted(samples)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return {
        "p50": statistics.median(ordered),
        "p90": rank(0.9),
        "p99": rank(0.99),
        "min": ordered[0],
        "max": ordered[-1],
        "count": len(ordered),
    }


@contextlib.contextmanager
def workdir(keep: bool, progress: Progress, *, prefix: str = "baetyl-bench-") -> Iterator[Path]:
    """A private directory the broker (dropped to its own user) can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        if keep:
            progress.say(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


Flag = tuple[str, Callable[[str], Any], str]  # ("--rounds", int, "help (default)")


def _bench_parser(doc: str | None, quick: str, flags: Sequence[Flag]) -> argparse.ArgumentParser:
    """A parser with the flags every edge bench has (--quick, --out, --keep) and the script's."""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0] if doc else None,
        epilog="Values left unset come from the full or the --quick plan. Progress goes to "
        "stderr, the Markdown summary to stdout.",
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    for name, kind, text in flags:
        parser.add_argument(name, type=kind, help=text)
    return parser


def _plan_from_flags(args: argparse.Namespace, full: P, quick: P) -> P:
    """The full or the `--quick` plan (a dataclass), with every flag given put in its field."""
    changes = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(full)  # type: ignore[arg-type]
        if getattr(args, field.name, None) is not None
    }
    return dataclasses.replace(quick if args.quick else full, **changes)  # type: ignore[type-var]


async def _cancelled_by_sigterm(body: Awaitable[Json]) -> Json:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await body


def bench_main(
    script: str,
    run: Callable[[Path, Reaper, Progress], Awaitable[Json]],
    summary: Callable[[Json], str],
    *,
    out: Path | None,
    keep: bool,
) -> int:
    """The body of a bench script's `main`: run, print the summary, write the JSON results.

    Whatever happens — a failed round, Ctrl-C, SIGTERM — every process the run started is
    stopped (the reaper) and its working directory removed (unless `keep`); 1 on a BenchError,
    130 when interrupted.
    """
    progress = Progress("bench", clock=True)
    reaper = Reaper()
    prefix = f"baetyl-bench-{Path(script).stem.replace('_', '-')}-"
    with workdir(keep, progress, prefix=prefix) as work:
        try:
            result = asyncio.run(_cancelled_by_sigterm(run(work, reaper, progress)))
        except (BenchError, KitError, WaitTimeout, Died) as exc:
            print(f"{script}: {exc}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, asyncio.CancelledError):
            print(f"{script}: interrupted", file=sys.stderr)
            return 130
        finally:
            reaper.cleanup()
    print(summary(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


@dataclasses.dataclass(frozen=True)
class BenchFlags(Generic[P]):
    """A bench script's own flags, its full and `--quick` plans, and what `--quick` means."""

    full: P
    quick: P
    quick_help: str
    flags: Sequence[Flag]


def bench_cli(
    script: str,
    doc: str | None,
    declared: BenchFlags[P],
    run: Callable[[P, Path, Reaper, Progress], Awaitable[Json]],
    summary: Callable[[Json], str],
) -> int:
    """A bench script's `main`: flags → plan (full or quick; its `problem()` refused with usage) →
    `bench_main` (run, summary, JSON, cleanup)."""
    parser = _bench_parser(doc, declared.quick_help, declared.flags)
    args = parser.parse_args()
    plan = _plan_from_flags(args, declared.full, declared.quick)
    refused = plan.problem()
    if refused:
        parser.error(refused)
    return bench_main(script, functools.partial(run, plan), summary, out=args.out, keep=args.keep)
