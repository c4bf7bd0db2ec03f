"""Apps outlive the agent: adoption after close and after a real SIGKILL, never twice."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from agent.contracts.report import AppStatus
from agent.core.native import NativeBackend, procs
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs, alive, application, deployment, exists, service
from tools.kit.waiting import eventually

REPO = Path(__file__).resolve().parents[4]


async def test_a_new_backend_adopts_what_a_closed_one_left_running(
    backends: BackendFactory, dirs: Dirs
) -> None:
    first = backends()
    await first.start()
    spec = deployment(application(replica=2))
    await first.apply(spec)
    before = await eventually(lambda: _pids(first, 2), what="two instances")
    await first.close()
    assert all(alive(pid) for pid in before.values())

    second = backends()
    await second.start()
    stats = second.observe()["demo"]
    assert _pids(second, 2) == before
    assert stats.status is AppStatus.RUNNING
    assert all(inst.restarts == 0 for inst in stats.instances.values())
    assert _marked_processes(dirs.run) == sorted(before.values())
    await second.apply(spec)
    assert _pids(second, 2) == before

    victim = before["default.demo.1.main.1"]
    os.kill(victim, signal.SIGKILL)  # adopted processes are still supervised
    after = await eventually(lambda: _pids(second, 2, without=victim), what="a restart")
    assert after["default.demo.1.main.2"] == before["default.demo.1.main.2"]
    assert second.observe()["demo"].instances["default.demo.1.main.1"].restarts == 1
    await eventually(lambda: not exists(victim), what="the killed process reaped")


async def test_an_adopted_ready_instance_stays_in_service_until_its_probe_fails(
    backends: BackendFactory, dirs: Dirs
) -> None:
    # The function proxy routes by the registry: an agent restart must not empty it, even for
    # the moment before the new agent's first readiness probe.
    ready = {"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 1}
    script = "put('ready', ''); put('pid', str(os.getpid())); time.sleep(600)"
    spec = deployment(application(services=[service(script=script, readinessProbe=ready)]))
    first = backends()
    await first.start()
    await first.apply(spec)
    await eventually(lambda: _registry(dirs).get("demo"), what="the ready instance listed")
    listed = _registry(dirs)
    await first.close()

    second = backends()
    await second.start()
    assert second.observe()["demo"].status is AppStatus.RUNNING
    assert _registry(dirs) == listed
    # Its probe still decides: once it fails the instance leaves the registry.
    [ready_file] = dirs.run.rglob("ready")
    ready_file.unlink()
    await eventually(lambda: _registry(dirs) == {}, what="the instance out of the registry")
    assert second.observe()["demo"].status is AppStatus.PENDING
    await second.remove("demo")


def _registry(dirs: Dirs) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(dirs.registry.read_text())
    return found


async def test_apps_survive_the_agent_being_killed_and_are_adopted_once(dirs: Dirs) -> None:
    with _driver(dirs.root, apply=True) as first:
        try:
            pids = _read_pids(first)
        finally:
            first.kill()  # SIGKILL: no cleanup of any kind in the agent
    assert all(alive(pid) for pid in pids.values())

    with _driver(dirs.root, apply=False) as second:
        assert _read_pids(second) == pids
        assert _marked_processes(dirs.run) == sorted(pids.values())
        assert second.stdin is not None
        second.stdin.write("remove\n")
        second.stdin.flush()
        assert _readline(second) == "removed"
    assert second.returncode == 0
    assert not any(alive(pid) for pid in pids.values())


async def test_a_reused_pid_is_not_adopted_and_the_instance_restarts(
    backends: BackendFactory, dirs: Dirs
) -> None:
    pid = await _run_then_close(backends)
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: _gone(pid), what="the app gone")

    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _edit_record(dirs.state, pid=stranger.pid, startTicks=1, createTime=1.0)
        second = backends()
        await second.start()
        (new,) = (await eventually(lambda: _pids(second, 1), what="restarted")).values()
        assert new != stranger.pid
        assert alive(stranger.pid)  # not ours: neither adopted nor signalled
        stats = second.observe()["demo"].instances["default.demo.1.main.1"]
        assert stats.restarts == 1
    finally:
        stranger.kill()
        stranger.wait()


async def test_an_unrecorded_instance_is_found_by_its_marker_and_not_started_twice(
    backends: BackendFactory, dirs: Dirs
) -> None:
    pid = await _run_then_close(backends)
    # As if the agent died right after starting the process, before recording it.
    book = json.loads((dirs.state / "instances.json").read_text())
    book["apps"]["demo"]["instances"] = []
    (dirs.state / "instances.json").write_text(json.dumps(book))

    second = backends()
    await second.start()
    assert _pids(second, 1) == {"default.demo.1.main.1": pid}
    assert _marked_processes(dirs.run) == [pid]


async def test_processes_of_an_app_nobody_knows_are_stopped(
    backends: BackendFactory, dirs: Dirs
) -> None:
    pid = await _run_then_close(backends)
    (dirs.state / "instances.json").write_text(json.dumps({"format": 1, "apps": {}}))

    second = backends()
    await second.start()
    assert second.observe() == {}
    await eventually(lambda: _gone(pid), what="the orphan stopped")


async def test_an_interrupted_removal_is_finished_at_start(
    backends: BackendFactory, dirs: Dirs
) -> None:
    pid = await _run_then_close(backends)
    book = json.loads((dirs.state / "instances.json").read_text())
    book["apps"]["demo"]["removing"] = True
    (dirs.state / "instances.json").write_text(json.dumps(book))

    second = backends()
    await second.start()
    assert "demo" not in second.observe()
    await eventually(lambda: _gone(pid), what="the app stopped")
    await eventually(lambda: not (dirs.run / "default" / "demo").exists(), what="files gone")


async def test_supervision_works_without_pidfd(
    backends: BackendFactory, dirs: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(procs, "USE_PIDFD", False)
    first = backends()
    await first.start()
    await first.apply(deployment(application()))
    (pid,) = (await eventually(lambda: _pids(first, 1), what="running")).values()
    os.kill(pid, signal.SIGKILL)
    restarted = await eventually(lambda: _pids(first, 1, without=pid), what="polled restart")
    (pid,) = restarted.values()
    await first.close()
    second = backends()
    await second.start()
    assert _pids(second, 1) == {"default.demo.1.main.1": pid}
    await second.remove("demo")
    assert not exists(pid)


# -- helpers -------------------------------------------------------------------------------------


def _pids(backend: NativeBackend, count: int, without: int = 0) -> dict[str, int] | None:
    """Pids of the demo app's instances once there are `count` (and `without` is not one)."""
    stats = backend.observe().get("demo")
    if stats is None:
        return None
    found = {name: i.pid for name, i in stats.instances.items() if i.pid is not None}
    return found if len(found) == count and without not in found.values() else None


def _gone(pid: int) -> bool:
    procs.reap_parked()
    return not alive(pid)


def _marked_processes(run_dir: Path) -> list[int]:
    """Every live process (not only the oldest per directory) carrying a marker under run_dir."""
    found = []
    for process in psutil.process_iter():
        try:
            value = process.environ().get(procs.MARKER, "")
            leader = os.getsid(process.pid) == process.pid
            if value.startswith(f"{run_dir}/") and leader and process.status() != "zombie":
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return sorted(found)


def _edit_record(state: Path, **changes: Any) -> None:
    path = state / "instances.json"
    book = json.loads(path.read_text())
    book["apps"]["demo"]["instances"][0].update(changes)
    path.write_text(json.dumps(book))


def _driver(root: Path, *, apply: bool) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.agent.core.native.driver", str(root)]
    return subprocess.Popen(
        [*argv, "apply"] if apply else argv,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _read_pids(driver: subprocess.Popen[str]) -> dict[str, int]:
    line = _readline(driver)
    pids: dict[str, int] = json.loads(line)["pids"]
    return pids


def _readline(driver: subprocess.Popen[str], timeout: float = 30.0) -> str:
    stream: IO[str] | None = driver.stdout
    assert stream is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the driver did not answer in time")
    return stream.readline().strip()


async def _run_then_close(backends: BackendFactory) -> int:
    """An agent's backend that started the demo app and closed (the agent stopped): its pid."""
    first = backends()
    await first.start()
    await first.apply(deployment(application()))
    (pid,) = (await eventually(lambda: _pids(first, 1), what="running")).values()
    await first.close()
    return pid
