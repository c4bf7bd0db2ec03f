"""Apps run as real processes: environment, files, versions, scaling, removal, registry, ports."""

from __future__ import annotations

import json
import os
import socket
import stat
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.report import AppStats, AppStatus, Usage
from agent.contracts.resources import Application
from agent.core.backend import DeployError
from agent.core.native import NativeBackend
from agent.core.native.ports import is_free
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import (
    NODE,
    SLEEPER,
    Dirs,
    alive,
    application,
    deployment,
    exists,
    service,
)
from tools.kit.waiting import eventually


def instance_pids(backend: NativeBackend, app: str) -> dict[str, int]:
    """Pid of each running instance of `app`, by instance name."""
    stats = backend.observe()[app]
    return {name: inst.pid for name, inst in stats.instances.items() if inst.pid is not None}


async def test_app_runs_with_baetyl_env_volumes_and_private_agent_env(
    backends: BackendFactory, dirs: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SECRET_TOKEN", "do-not-leak")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    backend = backends(port_range=(50200, 50300))
    await backend.start()
    host_dir = dirs.host / "shared"
    host_dir.mkdir()
    app = application(
        services=[
            service(
                env=[
                    {"name": "GREETING", "value": "hello"},
                    {"name": "LISTEN", "value": "127.0.0.1:$(BAETYL_SERVICE_DYNAMIC_PORT)"},
                    {"name": "BAETYL_RUN_MODE", "value": "kube"},
                ],
                workingDir="work",
                volumeMounts=[
                    {"name": "conf", "mountPath": "/etc/demo"},
                    {"name": "creds", "mountPath": "var/creds"},
                    {"name": "one", "mountPath": "/etc/one.yml", "subPath": "one.yml"},
                    {"name": "host", "mountPath": "/data"},
                    {"name": "scratch", "mountPath": "tmp/scratch"},
                ],
            )
        ],
        volumes=[
            {"name": "conf", "config": {"name": "demo-conf", "version": "1"}},
            {"name": "creds", "secret": {"name": "demo-creds"}},
            {"name": "one", "config": {"name": "demo-conf"}},
            {"name": "host", "hostPath": {"path": str(host_dir)}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    await backend.apply(
        deployment(
            app,
            configs={"demo-conf": {"app.yml": "a: 1\n", "one.yml": "one: true\n"}},
            secrets={"demo-creds": {"password": "s3cret"}},
        )
    )
    instance = dirs.instance("demo", "1")
    env = await eventually(lambda: _read_json(instance / "work" / "env.json"), what="app env")

    assert env["BAETYL_APP_NAME"] == "demo"
    assert env["BAETYL_SERVICE_NAME"] == "main"
    assert env["BAETYL_APP_VERSION"] == "1"
    assert env["BAETYL_NODE_NAME"] == NODE.name
    assert env["BAETYL_NODE_NAMESPACE"] == NODE.namespace
    assert env["BAETYL_RUN_MODE"] == "native"  # the platform's variables cannot be overridden
    port = int(env["BAETYL_SERVICE_DYNAMIC_PORT"])
    assert 50200 <= port <= 50300
    assert env["LISTEN"] == f"127.0.0.1:{port}"
    assert env["GREETING"] == "hello"
    assert env["PATH"] == os.environ["PATH"]
    assert env["LC_ALL"] == "C.UTF-8"
    assert "AGENT_SECRET_TOKEN" not in env

    assert (instance / "etc/demo/app.yml").read_text() == "a: 1\n"
    assert stat.S_IMODE((instance / "etc/demo/app.yml").stat().st_mode) == 0o644
    assert (instance / "etc/one.yml").read_text() == "one: true\n"
    assert (instance / "var/creds/password").read_text() == "s3cret"
    assert stat.S_IMODE((instance / "var/creds/password").stat().st_mode) == 0o600
    assert stat.S_IMODE((instance / "var/creds").stat().st_mode) == 0o700
    assert (instance / "data").is_symlink()
    assert (instance / "data").resolve() == host_dir.resolve()
    assert (instance / "tmp/scratch").is_dir()
    assert not list((instance / "tmp/scratch").iterdir())

    stats = backend.observe()["demo"]
    assert stats.status is AppStatus.RUNNING
    assert stats.version == "1"
    ((name, inst),) = stats.instances.items()
    assert name == "default.demo.1.main.1"
    assert inst.service_name == "main"
    assert inst.pid == int((instance / "work" / "pid").read_text())
    assert inst.create_time is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"volumeMounts": [{"name": "conf", "mountPath": "x", "subPath": "../../../etc"}]}, "'..'"),
        ({"workingDir": "../outside"}, "workingDir"),
        ({"workingDir": "/data/inner"}, "lies inside volume 'host'"),
        (
            {
                "volumeMounts": [
                    {"name": "host", "mountPath": "/data"},
                    {"name": "conf", "mountPath": "/data/conf"},
                ]
            },
            "lies inside volume 'host'",
        ),
        ({"volumeMounts": [{"name": "conf", "mountPath": "/"}]}, "below the service's directory"),
        ({"volumeMounts": [{"name": "missing", "mountPath": "m"}]}, "not provided"),
    ],
)
async def test_bad_specs_are_refused_and_change_nothing(
    backends: BackendFactory, dirs: Dirs, change: dict[str, Any], message: str
) -> None:
    backend = await _started(backends)
    await backend.apply(deployment(application(name="other")))
    before = await eventually(lambda: instance_pids(backend, "other"), what="other app")
    spec = service(**change)
    if change.get("workingDir") == "/data/inner":
        spec["volumeMounts"] = [{"name": "host", "mountPath": "/data"}]
    bad = _app_with_volumes("bad", spec, dirs)
    with pytest.raises(DeployError) as raised:
        await backend.apply(deployment(bad, configs={"conf": {"k": "v"}}))
    assert message in str(raised.value)
    assert "'bad'" in str(raised.value)
    assert "bad" not in backend.observe()
    assert not (dirs.run / NODE.namespace / "bad").exists()
    assert instance_pids(backend, "other") == before


async def test_unusable_version_no_command_and_missing_host_path_are_refused(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    with pytest.raises(DeployError, match="cannot name a directory"):
        await backend.apply(deployment(application(version="..")))
    imaged = application(mode="kube", services=[{"name": "main", "image": "busybox"}])
    with pytest.raises(DeployError, match="'main': a native service needs a command"):
        await backend.apply(deployment(imaged))
    missing = application(
        services=[service(volumeMounts=[{"name": "dev", "mountPath": "dev"}])],
        volumes=[
            {"name": "dev", "hostPath": {"path": str(dirs.host / "nope"), "type": "Directory"}}
        ],
    )
    with pytest.raises(DeployError, match="hostPath volume 'dev'"):
        await backend.apply(deployment(missing))
    assert backend.observe() == {}


async def test_new_version_replaces_instances_one_by_one(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    events = dirs.host / "events"
    script = f"""
    events = {str(events)!r}
    tag = os.environ['BAETYL_APP_VERSION'] + '/' + os.getcwd().rsplit('/', 1)[1]
    def bye(*_):
        note(events, 'stop ' + tag)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    put('pid', str(os.getpid()))
    note(events, 'start ' + tag)
    time.sleep(600)
    """
    # Without a readiness probe an instance is ready once started (as in Kubernetes); the probe
    # makes "ready" mean "has noted its start", so the order below is deterministic.
    ready = {"exec": {"command": ["test", "-f", "pid"]}, "periodSeconds": 1}
    v1 = application(
        version="1", replica=2, services=[service(script=script, readinessProbe=ready)]
    )
    await backend.apply(deployment(v1))
    old = await eventually(lambda: _two(instance_pids(backend, "demo")), what="v1 running")
    await eventually(
        lambda: events.exists() and len(events.read_text().split("\n")) > 2, what="v1 started"
    )

    v2 = application(
        version="2", replica=2, services=[service(script=script, readinessProbe=ready)]
    )
    await backend.apply(deployment(v2))

    stats = backend.observe()["demo"]
    assert stats.version == "2"
    assert set(stats.instances) == {"default.demo.2.main.1", "default.demo.2.main.2"}
    new = instance_pids(backend, "demo")
    assert not set(new.values()) & set(old.values())
    for pid in old.values():
        assert not exists(pid)
    assert not (dirs.run / NODE.namespace / "demo" / "1").exists()
    assert (dirs.state / "specs" / "demo" / "2.json").exists()
    assert not (dirs.state / "specs" / "demo" / "1.json").exists()
    lines = await eventually(lambda: _lines_if(events, 6), what="every start and stop noted")
    assert lines[2:] == ["start 2/1", "stop 1/1", "start 2/2", "stop 1/2"]


async def test_applying_the_same_version_again_changes_nothing(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    spec = deployment(application(replica=2))
    await backend.apply(spec)
    before = await eventually(lambda: _two(instance_pids(backend, "demo")), what="running")
    kept = dirs.state / "specs" / "demo" / "1.json"
    stamp = kept.stat().st_mtime_ns
    await backend.apply(spec)
    await backend.apply(deployment(application(replica=2)))
    assert instance_pids(backend, "demo") == before
    assert kept.stat().st_mtime_ns == stamp
    assert all(i.restarts == 0 for i in backend.observe()["demo"].instances.values())


async def test_scaling_adds_and_removes_instances(backends: BackendFactory, dirs: Dirs) -> None:
    backend = await _started(backends)
    await backend.apply(deployment(application(version="1", replica=1)))
    await backend.apply(
        deployment(
            application(
                version="2",
                replica=3,
                services=[service(), service("side", replica=1)],
            )
        )
    )
    stats = backend.observe()["demo"]
    assert sorted(stats.instances) == [
        "default.demo.2.main.1",
        "default.demo.2.main.2",
        "default.demo.2.main.3",
        "default.demo.2.side.1",
    ]
    await eventually(lambda: backend.observe()["demo"].status is AppStatus.RUNNING, what="up")
    three = instance_pids(backend, "demo")
    await backend.apply(deployment(application(version="3", replica=1)))
    stats = backend.observe()["demo"]
    assert list(stats.instances) == ["default.demo.3.main.1"]
    assert all(not exists(pid) for pid in three.values())
    assert sorted(p.name for p in (dirs.run / NODE.namespace / "demo").iterdir()) == ["3"]


async def test_the_same_version_with_other_replica_counts_scales_in_place(
    backends: BackendFactory,
) -> None:
    backend = await _started(backends)
    await backend.apply(deployment(application(replica=1)))
    (first,) = (await eventually(lambda: instance_pids(backend, "demo"), what="one")).values()
    await backend.apply(deployment(application(replica=2)))
    two = await eventually(lambda: _two(instance_pids(backend, "demo")), what="two instances")
    assert two["default.demo.1.main.1"] == first  # kept, not replaced
    await backend.apply(deployment(application(replica=1)))
    assert instance_pids(backend, "demo") == {"default.demo.1.main.1": first}
    assert not exists(two["default.demo.1.main.2"])


async def test_remove_stops_processes_deletes_files_and_keeps_logs(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    script = """
    print('hello from', os.getpid(), flush=True)
    child = os.fork()
    if child == 0:
        time.sleep(600)
    put('pid', str(os.getpid()))
    put('child', str(child))
    time.sleep(600)
    """
    await backend.apply(deployment(application(services=[service(script=script)])))
    instance = dirs.instance("demo", "1")
    pid = int(await eventually(lambda: _text(instance / "pid"), what="pid"))
    child = int(await eventually(lambda: _text(instance / "child"), what="child pid"))

    await backend.remove("demo")

    assert not exists(pid)  # stopped and reaped: no zombie
    await eventually(lambda: not alive(child), what="the app's child killed with it")
    assert "demo" not in backend.observe()
    assert not (dirs.run / NODE.namespace / "demo").exists()
    assert not (dirs.state / "specs" / "demo").exists()
    assert "hello from" in (dirs.log / NODE.namespace / "demo" / "main-1.log").read_text()
    assert json.loads(dirs.registry.read_text()) == {}
    with pytest.raises(KeyError):
        await backend.logs("demo", tail_lines=10, since_seconds=None)
    await backend.remove("demo")  # removing an unknown app is harmless


async def test_registry_lists_ready_instances_by_dynamic_port(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    await backend.apply(
        deployment(application(replica=2, services=[service(), service("aux", replica=1)]))
    )
    ports = {}
    for svc, index in (("main", 1), ("main", 2), ("aux", 1)):
        env = await eventually(partial(dirs.read_env, "demo", "1", svc, index), what="env")
        ports[(svc, index)] = int(env["BAETYL_SERVICE_DYNAMIC_PORT"])
    assert len(set(ports.values())) == 3
    registry = json.loads(dirs.registry.read_text())
    assert registry == {
        "demo": {
            "aux": [f"127.0.0.1:{ports[('aux', 1)]}"],
            "main": sorted(f"127.0.0.1:{ports[('main', i)]}" for i in (1, 2)),
        }
    }


async def test_dynamic_ports_are_unique_free_and_exhaustion_is_an_error(
    backends: BackendFactory, dirs: Dirs
) -> None:
    low = _free_range(6)
    taken = socket.socket()
    taken.bind(("127.0.0.1", low + 1))
    taken.listen()
    try:
        backend = await _started(backends, port_range=(low, low + 3))
        await backend.apply(deployment(application(replica=3)))
        ports = []
        for index in (1, 2, 3):
            env = await eventually(partial(dirs.read_env, "demo", "1", "main", index), what="env")
            ports.append(int(env["BAETYL_SERVICE_DYNAMIC_PORT"]))
        assert sorted(ports) == [low, low + 2, low + 3]  # low + 1 is in use by someone else
        with pytest.raises(DeployError, match="no free dynamic port"):
            await backend.apply(deployment(application(name="more")))
    finally:
        taken.close()


async def test_a_command_that_does_not_exist_fails_the_instance_not_the_backend(
    backends: BackendFactory,
) -> None:
    backend = await _started(backends)
    broken = application(name="broken", services=[{"name": "main", "command": ["/nonexistent/x"]}])
    await backend.apply(deployment(broken))
    stats = await eventually(
        lambda: _status(backend, "broken", AppStatus.FAILED), what="broken app failed"
    )
    assert "exec failed" in stats.cause
    assert "No such file or directory" in stats.cause
    await backend.apply(deployment(application(name="fine")))
    await eventually(lambda: _status(backend, "fine", AppStatus.RUNNING), what="fine app runs")


async def test_init_services_run_first_and_a_failing_one_fails_the_app(
    backends: BackendFactory, dirs: Dirs
) -> None:
    backend = await _started(backends)
    marker = dirs.host / "initialised"
    init = service("setup", script=f"note({str(marker)!r}, 'done')")
    main = service(script=f"assert os.path.exists({str(marker)!r}); " + SLEEPER.strip())
    await backend.apply(deployment(application(initServices=[init], services=[main])))
    await eventually(lambda: _status(backend, "demo", AppStatus.RUNNING), what="app running")
    assert list(backend.observe()["demo"].instances) == ["default.demo.1.main.1"]

    failing = service("setup", script=f"note({str(marker)!r}, 'again'); sys.exit(4)")
    version2 = deployment(application(version="2", initServices=[failing], services=[main]))
    cause = "init service 'setup': exited with code 4"
    with pytest.raises(DeployError, match=cause):
        await backend.apply(version2)
    stats = backend.observe()["demo"]
    assert stats.status is AppStatus.FAILED
    assert stats.cause == cause
    assert "default.demo.1.main.1" in stats.instances  # the old version keeps serving
    # The engine sees the failed rollout and applies it again later: the init service reruns.
    assert backend.rollout_failures() == {"demo": ("2", cause)}
    marker.unlink()
    with pytest.raises(DeployError, match=cause):
        await backend.apply(version2)
    assert marker.exists()


async def test_usage_is_reported_as_kubernetes_quantities(backends: BackendFactory) -> None:
    backend = await _started(backends)
    await backend.apply(deployment(application()))
    usage = await eventually(lambda: _usage_with_memory(backend), what="a memory sample", limit=10)
    assert usage.memory.endswith(("Mi", "Ki"))
    assert usage.cpu == "0" or usage.cpu.endswith("m")


# -- helpers -------------------------------------------------------------------------------------


async def _started(backends: BackendFactory, **options: object) -> NativeBackend:
    backend = backends(**options)
    await backend.start()
    return backend


def _app_with_volumes(name: str, spec: dict[str, object], dirs: Dirs) -> Application:
    return application(
        name=name,
        services=[spec],
        volumes=[
            {"name": "conf", "config": {"name": "conf"}},
            {"name": "missing", "config": {"name": "nowhere"}},
            {"name": "host", "hostPath": {"path": str(dirs.host)}},
        ],
    )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _text(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _two(found: dict[str, int]) -> dict[str, int] | None:
    return found if len(found) == 2 else None


def _lines_if(path: Path, count: int) -> list[str] | None:
    lines = path.read_text().splitlines() if path.exists() else []
    return lines if len(lines) >= count else None


def _status(backend: NativeBackend, app: str, status: AppStatus) -> AppStats | None:
    stats = backend.observe().get(app)
    return stats if stats is not None and stats.status is status else None


def _usage_with_memory(backend: NativeBackend) -> Usage | None:
    for inst in backend.observe()["demo"].instances.values():
        if inst.usage.memory != "0":
            return inst.usage
    return None


def _free_range(size: int) -> int:
    """The first port of `size` consecutive free ports in 50200-51000."""
    start = 50200 + (os.getpid() * 7) % 700
    for low in range(start, 51000 - size):
        if all(is_free(port) for port in range(low, low + size)):
            return low
    raise AssertionError("no free port range")


async def test_a_rollout_failing_on_the_node_is_failed_with_its_cause_also_after_a_restart(
    backends: BackendFactory, dirs: Dirs
) -> None:
    blocker = dirs.root / "blocker"
    blocker.write_text("a file where the app wants a directory")
    spec = service()
    spec["volumeMounts"] = [{"name": "data", "mountPath": "data"}]
    app = application(
        volumes=[
            {"name": "data", "hostPath": {"path": str(blocker / "d"), "type": "DirectoryOrCreate"}}
        ],
        services=[spec],
    )
    first = await _started(backends)
    with pytest.raises(DeployError, match="volume 'data'"):
        await first.apply(deployment(app))
    stats = first.observe()["demo"]
    assert (stats.status, stats.version) == (AppStatus.FAILED, "1")
    assert "Not a directory" in stats.cause
    assert first.rollout_failures() == {"demo": ("1", stats.cause)}
    await first.close()
    # The next agent resumes the unfinished rollout by itself; it fails with nobody awaiting it,
    # and must still say so (Failed with the cause) and offer the app to the engine again.
    second = await _started(backends)
    failed = await eventually(lambda: second.rollout_failures().get("demo"), what="resumed failure")
    assert failed[0] == "1"
    assert "Not a directory" in failed[1]
    assert second.observe()["demo"].status is AppStatus.FAILED
    blocker.unlink()
    await second.apply(deployment(app))  # what the engine does when the backoff ends
    await eventually(lambda: _status(second, "demo", AppStatus.RUNNING), what="app running")
    assert second.rollout_failures() == {}
