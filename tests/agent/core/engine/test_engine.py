"""The engine with a real local store, a real native backend and a scripted cloud fetcher.

The fetcher stands in for the sync module (it is not what these tests check): it serves the
resources a test put in its catalogue, or fails as a broken link would.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.desired import DesiredState
from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from agent.contracts.report import AppStatus
from agent.contracts.resources import Application, Configuration, ResourceKind, Secret
from agent.core.backend import FetchError
from agent.core.engine.engine import Engine, FailureKind
from agent.core.engine.planner import ResourceKey
from agent.core.objects import CacheSettings, ObjectCache
from agent.core.store import LocalStore
from tests.agent.core.agent_kit import SLEEPER
from tests.agent.core.native.conftest import BackendFactory
from tests.agent.core.native.kit import Dirs
from tests.harness.files import FileServer, file_server
from tools.kit.waiting import eventually

Resource = Application | Configuration | Secret


class Catalogue:
    """What the cloud would serve; `offline` makes every fetch fail."""

    def __init__(self) -> None:
        self.items: dict[ResourceKey, Resource] = {}
        self.offline = False
        self.fetches: list[tuple[ResourceKey, ...]] = []

    def add(self, resource: Resource, kind: ResourceKind) -> None:
        self.items[(kind, resource.name, resource.version)] = resource

    async def fetch(self, keys: Sequence[ResourceKey]) -> list[Resource]:
        self.fetches.append(tuple(keys))
        if self.offline:
            raise FetchError("resources cannot be fetched now: not connected")
        missing = [key for key in keys if key not in self.items]
        if missing:
            raise FetchError(f"the cloud refused the resources: 404 {missing}")
        return [self.items[key] for key in keys]


def app(name: str, version: str, *, config: str = "", script: str = SLEEPER) -> Application:
    body: dict[str, Any] = {
        "name": name,
        "version": version,
        "mode": "native",
        "services": [{"name": "main", "command": [sys.executable, "-c", script]}],
    }
    if config:
        body["volumes"] = [{"name": "conf", "config": {"name": config, "version": "c1"}}]
        body["services"][0]["volumeMounts"] = [{"name": "conf", "mountPath": "etc"}]
    return Application.model_validate(body)


@pytest.fixture
async def store(tmp_path: Path) -> LocalStore:
    local = LocalStore(tmp_path / "store")
    await local.open()
    return local


async def _engine(
    backends: BackendFactory, store: LocalStore, catalogue: Catalogue
) -> tuple[Engine, Any]:
    backend = backends()
    await backend.start()
    engine = Engine(backend, store, catalogue, interval=30, backoff_base=0.2, backoff_cap=1.0)
    return engine, backend


async def test_a_desired_app_is_fetched_with_its_config_and_deployed(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    catalogue.add(app("web", "v1", config="conf"), ResourceKind.APPLICATION)
    catalogue.add(
        Configuration(name="conf", version="c1", data={"a.txt": "hello"}),
        ResourceKind.CONFIGURATION,
    )
    engine, backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v1"}))
    plan = await engine.reconcile()
    assert plan.settled
    assert backend.observe()["web"].version == "v1"
    assert [len(batch) for batch in catalogue.fetches] == [1, 1]  # the spec, then its config
    assert (ResourceKind.CONFIGURATION, "conf", "c1") in await store.list_resources()


async def test_offline_fetches_fail_with_backoff_and_resume_when_the_link_returns(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    catalogue.add(app("web", "v1"), ResourceKind.APPLICATION)
    catalogue.offline = True
    engine, backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v1"}))
    await engine.reconcile()
    failure = engine.failures()["web"]
    assert failure.status is AppStatus.FAILED
    assert failure.cause.startswith("fetch: ")
    tries = len(catalogue.fetches)
    await engine.reconcile()  # still in backoff: no new fetch
    assert len(catalogue.fetches) == tries

    catalogue.offline = False
    engine.wake(retry_fetches=True)
    await engine.reconcile()
    assert engine.failures() == {}
    assert backend.observe()["web"].version == "v1"


async def test_a_failed_deploy_waits_out_its_backoff_when_the_link_returns(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    body = app("web", "v1").to_wire()
    # The backend refuses it: a hostPath that must be a file but does not exist.
    body["volumes"] = [
        {"name": "fetched", "hostPath": {"path": "/nonexistent/fetched", "type": "File"}}
    ]
    catalogue.add(Application.model_validate(body), ResourceKind.APPLICATION)
    engine, _backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v1"}))
    await engine.reconcile()
    assert engine.failures()["web"].status is AppStatus.FAILED
    # Only fetch failures are retried at once when the link comes back (FailureKind.FETCH).
    engine.wake(retry_fetches=True)
    await engine.reconcile()
    assert engine._failures["web"].kind is FailureKind.DEPLOY
    assert engine._failures["web"].count == 1  # not tried again


async def test_a_stored_desired_state_runs_without_any_cloud(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    spec = app("web", "v1")
    await store.save_resource(spec)
    catalogue.offline = True
    engine, backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v1"}))
    assert (await engine.reconcile()).settled
    assert catalogue.fetches == []
    assert backend.observe()["web"].version == "v1"


async def test_removed_apps_go_and_their_resources_are_pruned(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    catalogue.add(app("web", "v1"), ResourceKind.APPLICATION)
    catalogue.add(app("db", "v1"), ResourceKind.APPLICATION)
    engine, backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v1"}, sysapps={"db": "v1"}))
    await engine.reconcile()
    assert set(backend.observe()) == {"web", "db"}
    engine.set_desired(DesiredState(apps={"web": "v1"}))
    await engine.reconcile()
    assert set(backend.observe()) == {"web"}
    assert await store.list_resources() == {(ResourceKind.APPLICATION, "web", "v1")}


async def test_a_spec_for_another_version_is_refused(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    catalogue.items[(ResourceKind.APPLICATION, "web", "v2")] = app("web", "v1")
    engine, backend = await _engine(backends, store, catalogue)
    engine.set_desired(DesiredState(apps={"web": "v2"}))
    await engine.reconcile()
    assert "web" not in backend.observe()
    assert "other resources: application web version v1" in engine.failures()["web"].cause
    assert await store.list_resources() == set()


async def test_run_wakes_on_a_new_desired_state(
    backends: BackendFactory, store: LocalStore
) -> None:
    catalogue = Catalogue()
    catalogue.add(app("web", "v1"), ResourceKind.APPLICATION)
    engine, backend = await _engine(backends, store, catalogue)
    loop = asyncio.create_task(engine.run(), name="engine-under-test")
    try:
        engine.set_desired(DesiredState(apps={"web": "v1"}))
        async with asyncio.timeout(10):
            await engine.settled.wait()
            while "web" not in backend.observe():
                await asyncio.sleep(0.02)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_without_wake_on_change_a_new_desired_state_waits_for_the_next_tick(
    backends: BackendFactory, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconcile that deploys a new desired state is the tick's, one interval after the last.

    Compared on the engine's own loop clock, never on a guess of where the tick is: the tick's
    timer starts when a reconcile ends and cannot fire early, so load only lengthens the gap. An
    engine woken by the change would reconcile at once, well inside the interval.
    """
    catalogue = Catalogue()
    catalogue.add(app("web", "v1"), ResourceKind.APPLICATION)
    backend = backends()
    await backend.start()
    interval = 0.5
    engine = Engine(backend, store, catalogue, interval=interval, wake_on_change=False)
    clock = asyncio.get_running_loop().time
    spans: list[tuple[float, float]] = []  # (start, end) of each reconcile, on the loop clock
    reconcile = engine.reconcile

    async def timed() -> Any:
        start = clock()
        try:
            return await reconcile()
        finally:
            spans.append((start, clock()))

    monkeypatch.setattr(engine, "reconcile", timed)
    loop = asyncio.create_task(engine.run(), name="engine-under-test")
    try:
        async with asyncio.timeout(20):
            await engine.settled.wait()  # the first tick has run
        ticks = engine.reconciles
        engine.set_desired(DesiredState(apps={"web": "v1"}))
        assert not engine.settled.is_set()
        async with asyncio.timeout(20):
            await engine.settled.wait()
        assert engine.reconciles == ticks + 1  # deployed by one reconcile...
        assert backend.observe()["web"].version == "v1"
        (_, ended), (started, _) = spans[ticks - 1], spans[ticks]
        # ...the tick's: a full interval after the previous one (the clock resolution aside).
        assert started - ended >= interval - 0.01, f"reconciled {started - ended:.3f} s after"
        assert catalogue.fetches  # and that tick fetched the spec
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def object_config(server: FileServer, name: str, data: bytes, **fields: Any) -> Configuration:
    """Version c1 of `conf` with one object item served by `server` as `name`."""
    item = ObjectItem.model_validate(
        {
            "source": "local",
            "bucket": "code",
            "object": name,
            "url": server.url_of(name),
            "sha256": hashlib.sha256(data).hexdigest(),
            **fields,
        }
    )
    return Configuration(
        name="conf",
        version="c1",
        data={"a.txt": "text", f"{OBJECT_PREFIX}model.bin": item.to_text()},
    )


async def _object_engine(
    backends: BackendFactory, store: LocalStore, catalogue: Catalogue, dirs: Dirs
) -> tuple[Engine, Any]:
    backend = backends(objects_dir=dirs.root / "objects")
    await backend.start()
    cache = ObjectCache(CacheSettings(root=dirs.root / "objects", timeout=10))
    engine = Engine(
        backend, store, catalogue, interval=30, backoff_base=0.2, backoff_cap=1.0, objects=cache
    )
    return engine, backend


async def test_an_object_item_is_downloaded_and_mounted_beside_the_text_items(
    backends: BackendFactory, store: LocalStore, dirs: Dirs
) -> None:
    async with file_server() as server:
        server.files["m"] = b"\x00model\x01"
        catalogue = Catalogue()
        catalogue.add(app("web", "v1", config="conf"), ResourceKind.APPLICATION)
        catalogue.add(object_config(server, "m", b"\x00model\x01"), ResourceKind.CONFIGURATION)
        engine, backend = await _object_engine(backends, store, catalogue, dirs)
        engine.set_desired(DesiredState(apps={"web": "v1"}))
        assert (await engine.reconcile()).settled
        assert backend.observe()["web"].version == "v1"
        [etc] = list(dirs.run.rglob("etc"))
        assert (etc / "model.bin").read_bytes() == b"\x00model\x01"
        assert (etc / "a.txt").read_text() == "text"
        # A restart of the instance (a new version of the app) needs no second download.
        catalogue.add(app("web", "v2", config="conf"), ResourceKind.APPLICATION)
        engine.set_desired(DesiredState(apps={"web": "v2"}))
        assert (await engine.reconcile()).settled
        assert server.hits == {"m": 1}


async def test_a_wrong_digest_fails_the_app_and_is_retried(
    backends: BackendFactory, store: LocalStore, dirs: Dirs
) -> None:
    async with file_server() as server:
        server.files["m"] = b"tampered"
        catalogue = Catalogue()
        catalogue.add(app("web", "v1", config="conf"), ResourceKind.APPLICATION)
        catalogue.add(object_config(server, "m", b"original"), ResourceKind.CONFIGURATION)
        engine, backend = await _object_engine(backends, store, catalogue, dirs)
        engine.set_desired(DesiredState(apps={"web": "v1"}))
        await engine.reconcile()
        failure = engine.failures()["web"]
        assert "sha256" in failure.cause
        assert "model.bin" in failure.cause
        assert not failure.cause.startswith("fetch: ")
        assert "web" not in backend.observe()
        server.files["m"] = b"original"
        await eventually_deployed(engine, backend, "web", "v1")
        assert server.hits["m"] >= 2


async def test_an_expired_url_makes_the_engine_fetch_the_configuration_again(
    backends: BackendFactory, store: LocalStore, dirs: Dirs
) -> None:
    async with file_server() as server:
        server.files["fresh"] = b"bytes"
        catalogue = Catalogue()
        catalogue.add(app("web", "v1", config="conf"), ResourceKind.APPLICATION)
        server.status["old"] = 403  # what the cloud answers for an expired presigned URL
        stale = object_config(server, "old", b"bytes")
        catalogue.add(stale, ResourceKind.CONFIGURATION)
        engine, backend = await _object_engine(backends, store, catalogue, dirs)
        engine.set_desired(DesiredState(apps={"web": "v1"}))
        await engine.reconcile()
        failure = engine.failures()["web"]
        assert failure.cause.startswith("fetch: ")
        assert "HTTP 403" in failure.cause
        assert (ResourceKind.CONFIGURATION, "conf", "c1") not in await store.list_resources()
        # The cloud now serves the same version with a fresh URL.
        catalogue.add(object_config(server, "fresh", b"bytes"), ResourceKind.CONFIGURATION)
        engine.wake(retry_fetches=True)
        await eventually_deployed(engine, backend, "web", "v1")
        [etc] = list(dirs.run.rglob("etc"))
        assert (etc / "model.bin").read_bytes() == b"bytes"


async def eventually_deployed(engine: Engine, backend: Any, app_name: str, version: str) -> None:
    """Reconcile until the app runs at `version` (failures wait out their short backoff)."""

    async def deployed() -> bool:
        await engine.reconcile()
        stats = backend.observe().get(app_name)
        return stats is not None and stats.version == version

    await eventually(deployed, limit=30, what=f"{app_name} {version} deployed")
