"""Supervision with real processes: crash loops, jobs, probes and graceful stops."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from agent.contracts.report import AppStats, AppStatus
from agent.core.native import NativeBackend
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs, alive, application, deployment, exists, service
from tests.harness.common import free_port
from tools.kit.waiting import eventually


async def test_a_crash_loop_backs_off_longer_each_time_and_reads_failed(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends()
    await backend.start()
    causes: list[str] = []
    backend.on_change(lambda: _collect_cause(backend, causes))
    runs = dirs.host / "runs"
    await backend.apply(
        deployment(
            application(services=[service(script=f"note({str(runs)!r}, 'run'); sys.exit(3)")])
        )
    )

    stats = await eventually(lambda: _restarted(backend, 5), what="five restarts")
    assert stats.status is AppStatus.FAILED
    assert re.fullmatch(
        r"default\.demo\.1\.main\.1: CrashLoopBackOff: exited with code 3, "
        r"restarting in [0-9.]+ s \(\d+ exits in a row\)",
        stats.cause,
    ), stats.cause
    delays = [float(m) for c in causes for m in re.findall(r"restarting in ([0-9.]+) s", c)]
    distinct = list(dict.fromkeys(delays))
    assert distinct[:4] == [0.1, 0.2, 0.4, 0.8]  # doubling from backoff_base to backoff_cap
    assert max(delays) == 0.8
    pending = [c for c in causes if "restarting in 0.1 s" in c or "restarting in 0.2 s" in c]
    assert pending
    assert all("in a row" not in c for c in pending)  # below the threshold: Pending
    assert len(runs.read_text().split()) >= 5


async def test_job_that_succeeds_is_not_restarted(backends: BackendFactory, dirs: Dirs) -> None:
    backend = backends()
    await backend.start()
    runs = dirs.host / "runs"
    job = application(
        workload="job", services=[service(script=f"note({str(runs)!r}, 'run'); sys.exit(0)")]
    )
    await backend.apply(deployment(job))
    stats = await eventually(lambda: _status(backend, AppStatus.SUCCEEDED), what="success")
    (inst,) = stats.instances.values()
    assert inst.restarts == 0
    assert inst.pid is None
    await asyncio.sleep(0.3)
    assert runs.read_text().split() == ["run"]
    await backend.apply(deployment(job))  # the same version again: not run again
    assert runs.read_text().split() == ["run"]


async def test_job_with_restart_policy_never_fails_at_the_first_error(
    backends: BackendFactory,
) -> None:
    backend = backends()
    await backend.start()
    job = application(
        workload="job",
        jobConfig={"restartPolicy": "Never", "backoffLimit": 5},
        services=[service(script="sys.exit(2)")],
    )
    await backend.apply(deployment(job))
    stats = await eventually(lambda: _status(backend, AppStatus.FAILED), what="failure")
    assert stats.cause == "default.demo.1.main.1: exited with code 2"
    assert next(iter(stats.instances.values())).restarts == 0


async def test_job_on_failure_retries_until_the_backoff_limit(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends()
    await backend.start()
    runs = dirs.host / "runs"
    job = application(
        workload="job",
        jobConfig={"restartPolicy": "OnFailure", "backoffLimit": 2},
        services=[service(script=f"note({str(runs)!r}, 'run'); sys.exit(1)")],
    )
    await backend.apply(deployment(job))
    stats = await eventually(lambda: _status(backend, AppStatus.FAILED), what="failure")
    assert "BackoffLimitExceeded: exited with code 1 (3 failures, backoffLimit 2)" in stats.cause
    assert next(iter(stats.instances.values())).restarts == 2
    assert runs.read_text().split() == ["run"] * 3


async def test_job_on_failure_succeeds_after_retries(backends: BackendFactory, dirs: Dirs) -> None:
    backend = backends()
    await backend.start()
    runs = dirs.host / "runs"
    script = f"""
    note({str(runs)!r}, 'run')
    sys.exit(0 if len(open({str(runs)!r}).read().split()) >= 3 else 1)
    """
    job = application(
        workload="job",
        jobConfig={"restartPolicy": "OnFailure", "backoffLimit": 6},
        services=[service(script=script)],
    )
    await backend.apply(deployment(job))
    stats = await eventually(lambda: _status(backend, AppStatus.SUCCEEDED), what="success")
    assert next(iter(stats.instances.values())).restarts == 2


def _http_server(port: int, status: int) -> str:
    return f"""
    import http.server
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response({status})
            self.end_headers()
        def log_message(self, *args):
            pass
    put('pid', str(os.getpid()))
    http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()
    """


@pytest.mark.parametrize("kind", ["httpGet", "tcpSocket", "exec"])
async def test_failing_liveness_probe_restarts_the_instance(
    backends: BackendFactory, dirs: Dirs, kind: str
) -> None:
    backend = backends(grace_period=1.0)
    await backend.start()
    port = free_port()
    if kind == "httpGet":
        script, action = _http_server(port, 500), {"httpGet": {"port": port, "path": "/healthz"}}
        expected = f"liveness probe failed: HTTP GET http://127.0.0.1:{port}/healthz: status 500"
    elif kind == "tcpSocket":
        script, action = (
            "put('pid', str(os.getpid())); time.sleep(600)",
            {"tcpSocket": {"port": port}},
        )
        expected = f"liveness probe failed: TCP 127.0.0.1:{port}: connection refused"
    else:
        script = "put('pid', str(os.getpid())); time.sleep(600)"
        action = {"exec": {"command": ["sh", "-c", "echo sick $BAETYL_APP_NAME; exit 7"]}}
        expected = (
            "liveness probe failed: exec 'sh -c echo sick $BAETYL_APP_NAME; exit 7': "
            "exit code 7: sick demo"
        )
    probe = {**action, "initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 1}
    causes: list[str] = []
    backend.on_change(lambda: _collect_cause(backend, causes))
    await backend.apply(
        deployment(application(services=[service(script=script, livenessProbe=probe)]))
    )
    first = int(await eventually(lambda: _text(dirs.instance("demo", "1") / "pid"), what="pid"))

    stats = await eventually(lambda: _restarted(backend, 1), what="a restart")
    assert any(expected in cause for cause in causes), causes
    second = await eventually(lambda: _running_pid(backend, other_than=first), what="new pid")
    assert second != first
    assert not exists(first)
    assert stats.instances["default.demo.1.main.1"].restarts >= 1


async def test_passing_liveness_and_readiness_probes_keep_the_instance(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends()
    await backend.start()
    port = free_port()
    ready_probe = {
        "exec": {"command": ["test", "-f", "ready"]},
        "periodSeconds": 1,
    }
    script = _http_server(port, 200).replace(
        "put('pid'", "time.sleep(0.5); put('ready', ''); put('pid'"
    )
    app = application(
        services=[
            service(
                script=script,
                livenessProbe={"httpGet": {"port": port}, "periodSeconds": 1},
                readinessProbe=ready_probe,
            )
        ]
    )
    await backend.apply(deployment(app))
    stats = backend.observe()["demo"]
    if stats.status is AppStatus.PENDING:  # not ready yet
        assert "not ready" in stats.cause
        assert json.loads(dirs.registry.read_text()) == {}
    stats = await eventually(lambda: _status(backend, AppStatus.RUNNING), what="ready")
    assert json.loads(dirs.registry.read_text())["demo"]["main"]
    await asyncio.sleep(2.5)  # the liveness probe keeps passing: no restart over a few periods
    assert backend.observe()["demo"].instances["default.demo.1.main.1"].restarts == 0
    assert backend.observe()["demo"].status is AppStatus.RUNNING


async def test_stop_escalates_to_sigkill_for_an_app_that_ignores_sigterm(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = backends(grace_period=0.5)
    await backend.start()
    script = """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    put('pid', str(os.getpid()))
    time.sleep(600)
    """
    pid, took = await _removal_of_one(backend, dirs, script)
    assert took >= 0.5
    assert not exists(pid)


async def test_stop_lets_an_app_finish_on_sigterm(backends: BackendFactory, dirs: Dirs) -> None:
    backend = backends(grace_period=10.0)
    await backend.start()
    script = """
    def bye(*_):
        print('cleaning up', flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    put('pid', str(os.getpid()))
    time.sleep(600)
    """
    pid, took = await _removal_of_one(backend, dirs, script)
    assert took < 5.0  # well within the grace period: SIGTERM was enough
    assert not alive(pid)
    assert "cleaning up" in (dirs.log / "default" / "demo" / "main-1.log").read_text()


# -- helpers -------------------------------------------------------------------------------------


async def _removal_of_one(backend: NativeBackend, dirs: Dirs, script: str) -> tuple[int, float]:
    """Run `script` (it writes its pid), remove its app: (the pid, seconds the removal took)."""
    await backend.apply(deployment(application(services=[service(script=script)])))
    pid = int(await eventually(lambda: _text(dirs.instance("demo", "1") / "pid"), what="pid"))
    began = time.monotonic()
    await backend.remove("demo")
    return pid, time.monotonic() - began


def _collect_cause(backend: NativeBackend, causes: list[str]) -> None:
    stats = backend.observe().get("demo")
    if stats is None:
        return
    for inst in stats.instances.values():
        if inst.cause and (not causes or causes[-1] != inst.cause):
            causes.append(inst.cause)


def _restarted(backend: NativeBackend, count: int) -> AppStats | None:
    stats = backend.observe().get("demo")
    if stats is None:
        return None
    total = sum(inst.restarts for inst in stats.instances.values())
    return stats if total >= count else None


def _status(backend: NativeBackend, status: AppStatus) -> AppStats | None:
    stats = backend.observe().get("demo")
    return stats if stats is not None and stats.status is status else None


def _running_pid(backend: NativeBackend, *, other_than: int) -> int | None:
    stats = backend.observe()["demo"]
    for inst in stats.instances.values():
        if inst.pid is not None and inst.pid != other_than:
            return inst.pid
    return None


def _text(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
