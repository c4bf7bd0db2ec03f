"""baetyl-core against the real cloud and broker: desired apps become processes, and back.

The agent runs in the test's loop here (`Core`), the apps are real processes, the cloud is the
real one bridged to the session Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.contracts.topics import Channel
from agent.core.app import Core
from agent.core.config import load_config
from agent.core.sync import shadow_sync
from agent.core.sync.answer_fit import NODE_PAYLOAD_LIMIT
from agent.core.sync.link import Received
from tests.agent.core.agent_kit import (
    SLEEPER,
    PollingReads,
    app_body,
    app_running,
    python_service,
    remove_left_apps,
    reported,
    write_core_config,
)
from tests.harness.cloud import CloudServer
from tests.harness.mosquitto import MosquittoBroker
from tests.harness.pki import HarnessPKI
from tools.kit.procs import alive
from tools.kit.waiting import eventually

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(90)]

ENV_DUMP = (
    "import json, os, time\n"
    "json.dump({k: v for k, v in os.environ.items() if k.startswith('BAETYL_')},"
    " open('env.json', 'w'))\n"
    "print('hello from', os.environ['BAETYL_APP_NAME'], flush=True)\n"
    "while True: time.sleep(1)"
)
RunningCore = Callable[..., AbstractAsyncContextManager[Core]]


@pytest.fixture
def running_core(tmp_path: Path, mosquitto: MosquittoBroker, pki: HarnessPKI) -> RunningCore:
    """`async with running_core(nid, **options) as core:` — baetyl-core for that node in this loop.

    `options` are those of `write_core_config` (`report_interval`, `sync_mode`, ...).
    """

    @asynccontextmanager
    async def run(nid: str, **options: Any) -> AsyncIterator[Core]:
        path = write_core_config(tmp_path / nid, nid, mosquitto=mosquitto, pki=pki, **options)
        core = Core(load_config(path))
        stop = asyncio.Event()
        task = asyncio.create_task(core.run_until(stop), name=f"core-{nid}")
        try:
            yield core
        finally:
            stop.set()
            await task
            # Apps outlive the agent: a fresh backend adopts them and removes them.
            config = load_config(path)
            await remove_left_apps(config)

    return run


@asynccontextmanager
async def _settled(
    cloud: CloudServer, running_core: RunningCore, **options: Any
) -> AsyncIterator[tuple[Core, str, str]]:
    """baetyl-core for a node of its own (labelled `run=<run>`), online and past its first
    report: (core, node name, run)."""
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    async with running_core(nid, **options) as core:
        await eventually(lambda: _online(cloud, name), what="node online")
        await eventually(lambda: _reported_once(core), what="the report after connecting")
        yield core, name, run


async def _node(cloud: CloudServer, labels: dict[str, str]) -> tuple[str, str]:
    name = f"n-{uuid.uuid4().hex[:10]}"
    await cloud.ok("POST", "/v1/nodes", {"name": name, "labels": labels})
    return name, f"default.{name}"


async def test_an_app_created_in_the_cloud_runs_with_baetyl_env_and_goes_away_when_deleted(
    cloud: CloudServer, running_core: RunningCore
) -> None:
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    async with running_core(nid) as core:
        await eventually(lambda: _online(cloud, name), what="node online")
        started = time.monotonic()
        app = await cloud.ok(
            "POST", "/v1/apps", app_body(f"hello-{run}", f"run={run}", python_service(ENV_DUMP))
        )
        stats = await eventually(
            lambda: app_running(cloud, name, app["name"], app["version"]), what="app running"
        )
        latency = time.monotonic() - started
        instance = next(iter(stats["instances"].values()))
        process = psutil.Process(instance["pid"])
        env_file = Path(process.cwd()) / "env.json"
        env = await eventually(lambda: _read_json(env_file), what="env.json")
        assert env["BAETYL_APP_NAME"] == app["name"]
        assert env["BAETYL_APP_VERSION"] == app["version"]
        assert env["BAETYL_NODE_NAME"] == name
        assert env["BAETYL_NODE_NAMESPACE"] == "default"
        assert env["BAETYL_RUN_MODE"] == "native"
        low, high = core.config.native.port_range
        assert low <= int(env["BAETYL_SERVICE_DYNAMIC_PORT"]) <= high
        # The report carries the node's own facts too.
        section = await reported(cloud, name)
        assert section["core"]["backend"] == "native"
        assert section["node"]
        assert section["nodestats"]
        # … in Baetyl's formats, as the cloud's NodeView shows them (decision 150).
        view = await cloud.ok("GET", f"/v1/nodes/{name}/stats")
        (load,) = view["report"]["nodestats"].values()
        assert 0 <= float(load["usage"]["cpu"]) <= int(load["capacity"]["cpu"])
        assert all(0 <= float(share) <= 1 for share in load["percent"].values()), load
        mounts = {"disk_" + p.mountpoint for p in psutil.disk_partitions(all=False)}
        assert mounts <= set(load["capacity"]), load  # each real file system, as Baetyl's
        assert set(load["netio"]) == {
            "netBytesSent",
            "netBytesRecv",
            "netPacketsSent",
            "netPacketsRecv",
        }

        # The app prints its greeting after writing env.json: wait for the line, not a moment.
        async def greeted() -> bool:
            logs = await cloud.call("GET", f"/v1/nodes/{name}/apps/{app['name']}/logs?tailLines=5")
            assert logs.status == 200, logs.body
            return f"hello from {app['name']}" in logs.body

        await eventually(greeted, what="the app's greeting in its logs")

        await cloud.ok("DELETE", f"/v1/apps/{app['name']}")
        await eventually(lambda: _gone(cloud, name, app["name"]), what="app gone from the report")
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
        assert core.backend.observe() == {}
    # Logged so the push latency can be read in the test output (timings live in bench/).
    print(f"create -> running: {latency * 1000:.0f} ms")


LOUD = (
    "import sys, time\n"
    "line = 'x' * 99 + '\\n'\n"
    "for _ in range(8000): sys.stdout.write(line)\n"
    "print('the last line', flush=True)\n"
    "while True: time.sleep(1)"
)


async def test_logs_larger_than_a_node_may_publish_arrive_cut_to_their_latest_lines(
    cloud: CloudServer, running_core: RunningCore
) -> None:
    """Decision #98: 800 KB of log is over the 320 KiB a node may publish. Before, the answer was
    dropped (by the cloud, now also by the broker) and the REST call timed out."""
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    async with running_core(nid):
        await eventually(lambda: _online(cloud, name), what="node online")
        app = await cloud.ok(
            "POST", "/v1/apps", app_body(f"loud-{run}", f"run={run}", python_service(LOUD))
        )
        path = f"/v1/nodes/{name}/apps/{app['name']}/logs?tailLines=10000"

        async def cut_logs() -> str | None:
            logs = await cloud.call("GET", path)
            body = logs.body  # None while the app has written nothing yet
            if logs.status != 200 or not isinstance(body, str) or "the last line" not in body:
                return None
            return body

        body = await eventually(cut_logs, what="the app's last line in its logs")
        assert body.startswith("[")
        assert "characters cut" in body.splitlines()[0]
        assert body.rstrip().endswith("the last line")
        assert 200_000 < len(body.encode()) < NODE_PAYLOAD_LIMIT


async def test_a_new_version_replaces_the_processes(
    cloud: CloudServer, running_core: RunningCore
) -> None:
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    app_name = f"ver-{run}"
    async with running_core(nid):
        first = await cloud.ok(
            "POST", "/v1/apps", app_body(app_name, f"run={run}", python_service(SLEEPER))
        )
        before = await eventually(
            lambda: app_running(cloud, name, app_name, first["version"]), what="v1 running"
        )
        body = app_body(app_name, f"run={run}", python_service(SLEEPER + "  # v2"))
        second = await cloud.ok("PUT", f"/v1/apps/{app_name}", body)
        assert second["version"] != first["version"]
        old_pids = {i["pid"] for i in before["instances"].values()}

        async def replaced() -> dict[str, Any] | None:
            # The new version reports Running as soon as its instance runs; the old one may
            # still be in its stop grace then (a rolling update starts before it stops).
            stats = await app_running(cloud, name, app_name, second["version"])
            pids = {i["pid"] for i in (stats or {}).get("instances", {}).values()}
            return stats if stats and pids and old_pids.isdisjoint(pids) else None

        await eventually(replaced, what="v2 running, the v1 instance gone")
    assert not any(psutil.pid_exists(pid) and alive(pid) for pid in old_pids)


async def test_a_bad_spec_is_reported_as_failed_and_other_apps_run_on(
    cloud: CloudServer, running_core: RunningCore
) -> None:
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    async with running_core(nid):
        good = await cloud.ok(
            "POST", "/v1/apps", app_body(f"good-{run}", f"run={run}", python_service(SLEEPER))
        )
        crashing = app_body(f"crash-{run}", f"run={run}", python_service("import sys; sys.exit(3)"))
        await cloud.ok("POST", "/v1/apps", crashing)
        await eventually(
            lambda: app_running(cloud, name, good["name"], good["version"]), what="good app"
        )

        async def failed() -> dict[str, object] | None:
            stats = (await reported(cloud, name)).get("appstats", {}).get(f"crash-{run}")
            return stats if stats and stats["status"] == "Failed" else None

        stats = await eventually(failed, limit=30, what="crashing app reported Failed")
        assert "exited with code 3" in str(stats["cause"])

        missing = app_body(
            f"noexec-{run}", f"run={run}", {"name": "main", "command": ["/nonexistent/bin/x"]}
        )
        await cloud.ok("POST", "/v1/apps", missing)

        async def exec_failed() -> dict[str, object] | None:
            section = await reported(cloud, name)
            stats = section.get("appstats", {}).get(f"noexec-{run}")
            # Not "exec": the instance's name (noexec-…) is in every cause of this app.
            cause = str(stats.get("cause", "")) if stats else ""
            return stats if "exec failed" in cause else None

        cause = (await eventually(exec_failed, limit=30, what="exec failure reported"))["cause"]
        assert "/nonexistent/bin/x" in str(cause)
        assert await app_running(cloud, name, good["name"], good["version"])


async def test_a_stale_delta_is_ignored(cloud: CloudServer, running_core: RunningCore) -> None:
    async with _settled(cloud, running_core) as (core, _name, run):
        version = core.sync.version
        # A delta the cloud might have sent long ago: its version is not newer than ours.
        stale = {"state": {"apps": {"ghost": "1"}}, "metadata": {}, "version": 1, "timestamp": 1}
        await core.sync._deliver(_delta(stale))
        # A newer delta is taken or makes the agent read its shadow; this one did neither.
        assert not core.sync._refresh_now.is_set()
        # A sentinel through the same path: a real change after it. Once the agent has taken
        # that one in, anything the stale delta could have caused has happened too.
        app = await cloud.ok(
            "POST", "/v1/apps", app_body(f"after-{run}", f"run={run}", python_service(SLEEPER))
        )
        await eventually(lambda: _wanted(core, app["name"]), what="the change after it")
        assert core.sync.version > version
        assert set(core.engine.wanted) == {app["name"]}


async def test_pushing_a_desired_change_is_taken_from_its_delta_without_a_read(
    cloud: CloudServer, running_core: RunningCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic report during the test (a report that finds the version moved on reads the
    # shadow too): only the delta can tell the agent of the change.
    async with _settled(cloud, running_core, report_interval=60.0) as (core, name, run):
        reports = core.sync.reports_sent
        reads: list[int] = []
        read = core.sync._refresh  # counted, not replaced

        async def counted() -> None:
            reads.append(core.sync.version)
            await read()

        monkeypatch.setattr(core.sync, "_refresh", counted)
        app = await cloud.ok(
            "POST", "/v1/apps", app_body(f"push-{run}", f"run={run}", python_service(SLEEPER))
        )
        await eventually(lambda: _wanted(core, app["name"]), what="desired change taken")
        # Before any report went out, and the next periodic one is a minute away: the delta
        # told it, and carried the whole desired section, so the shadow was not read either
        # (decision #124).
        assert core.sync.reports_sent == reports
        assert reads == []
        doc = await cloud.ok("GET", f"/v1/nodes/{name}/shadow")
        assert core.sync.version == doc["version"]


async def test_a_pushed_desired_state_after_a_gap_is_taken_and_the_shadow_read_too(
    cloud: CloudServer, running_core: RunningCore
) -> None:
    async with _settled(cloud, running_core, report_interval=60.0) as (core, _name, _run):
        version = core.sync.version
        # Two versions on: something else wrote in between, so the reported side the agent
        # holds may be out of date (the desired section is whole either way).
        pushed = {"nodeprops": {"k": "v"}}
        ahead = {"state": {}, "metadata": {}, "version": version + 2, "timestamp": 1.0}
        await core.sync._deliver(_delta({**ahead, "desired": pushed}))
        assert core.sync.desired.nodeprops == {"k": "v"}
        assert core.sync.version == version + 2
        assert core.sync._refresh_now.is_set()
        # The read that follows brings back what the cloud holds.
        await eventually(lambda: core.sync.desired.nodeprops == {}, what="the shadow read")


async def test_polling_a_desired_change_waits_for_the_next_report_tick(
    cloud: CloudServer,
    running_core: RunningCore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger=shadow_sync.__name__)
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    async with running_core(nid, sync_mode="poll", report_interval=2.0) as core:
        # The core's task has not started yet: every read is counted from the first one.
        with PollingReads(core.sync).watch(monkeypatch) as reads:
            await eventually(lambda: _online(cloud, name), what="node online")
            (said,) = [r for r in caplog.records if r.getMessage().startswith("polling timing")]
            assert (said.levelno, vars(said)["sync_mode"], vars(said)["engine_mode"]) == (
                logging.WARNING,
                "poll",
                "event",
            )
            app = await cloud.ok(
                "POST", "/v1/apps", app_body(f"poll-{run}", f"run={run}", python_service(SLEEPER))
            )
            await eventually(lambda: _wanted(core, app["name"]), what="read at a tick")
            assert reads.ignored_deltas >= 1, "the cloud pushed a delta for the change"
            # Every read came from a tick or a connect: none was caused by the delta.
            assert reads.stray_reads == []


async def test_ticking_engine_deploys_a_new_desired_state_only_at_its_next_tick(
    cloud: CloudServer, running_core: RunningCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconcile that deploys a pushed change is a tick: one interval after the last one.

    Compared on the engine's own loop clock (its tick timer starts when a reconcile ends and
    cannot fire early, so load only lengthens the gaps), never on a guess of where a tick is.
    """
    run = uuid.uuid4().hex[:8]
    name, nid = await _node(cloud, {"run": run})
    interval = 2.0
    async with running_core(nid, engine_mode="tick", engine_interval=interval) as core:
        engine = core.engine
        clock = asyncio.get_running_loop().time
        spans: list[tuple[float, float, bool]] = []  # (start, end, wanted the app at start)
        reconcile = engine.reconcile
        wanted_app = ""

        async def timed() -> Any:
            start, wanted = clock(), wanted_app in engine.wanted
            try:
                return await reconcile()
            finally:
                spans.append((start, clock(), wanted))

        monkeypatch.setattr(engine, "reconcile", timed)
        await eventually(lambda: _online(cloud, name), what="node online")
        ticks = engine.reconciles
        await eventually(lambda: _reconciled_since(core, ticks), what="an engine tick")
        app = await cloud.ok(
            "POST", "/v1/apps", app_body(f"tick-{run}", f"run={run}", python_service(SLEEPER))
        )
        wanted_app = app["name"]
        await eventually(lambda: _wanted(core, app["name"]), what="the pushed change")
        await eventually(
            lambda: app_running(cloud, name, app["name"], app["version"]), what="deployed"
        )
        first = next(i for i, (_, _, wanted) in enumerate(spans) if wanted)
        assert first > 0
        (_, ended, _), (started, _, _) = spans[first - 1], spans[first]
        assert started - ended >= interval - 0.01, (
            f"the change was deployed {started - ended:.3f} s after the last reconcile"
        )


async def _wanted(core: Core, app: str) -> bool:
    return app in core.engine.wanted


async def _reconciled_since(core: Core, count: int) -> bool:
    return core.engine.reconciles > count and core.engine.settled.is_set()


async def _online(cloud: CloudServer, name: str) -> bool:
    view = await cloud.ok("GET", f"/v1/nodes/{name}")
    return bool(view["ready"] == 1)


async def _gone(cloud: CloudServer, name: str, app: str) -> bool:
    section = await reported(cloud, name)
    return app not in section.get("apps", {}) and app not in section.get("appstats", {})


async def _reported_once(core: Core) -> bool:
    return core.sync.reports_sent > 0


async def _read_json(path: Path) -> dict[str, str] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data: dict[str, str] = json.loads(path.read_text())
        return data
    return None


def _delta(body: dict[str, object]) -> Received:
    return Received(Channel.SHADOW_UPDATE_DELTA, json.dumps(body).encode())
