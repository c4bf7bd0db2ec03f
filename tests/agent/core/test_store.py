"""The local store: round trips, immutable resources, pruning, damage, and kill -9 safety."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.contracts.resources import Application, Configuration, ResourceKind, Secret
from agent.core.store import LocalStore, Snapshot, StoreError, StoreFiles

REPO = Path(__file__).resolve().parents[3]


def config(name: str, version: str, **data: str) -> Configuration:
    return Configuration(name=name, version=version, data=data or {"a.txt": "hello"})


def secret(name: str, version: str) -> Secret:
    return Secret(name=name, version=version, data={"password": "s3cret"})


def application(name: str, version: str) -> Application:
    return Application.model_validate(
        {
            "name": name,
            "version": version,
            "mode": "native",
            "services": [{"name": "main", "command": ["sleep", "60"]}],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> StoreFiles:
    files = StoreFiles(tmp_path / "store")
    files.open()
    return files


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_empty_and_owner_only(store: StoreFiles) -> None:
    assert store.load_desired() is None
    assert store.load_reported() is None
    assert store.list_resources() == set()
    assert store.load_state("native") is None
    assert mode_of(store.root) == 0o700


def test_opening_tightens_a_store_directory_created_too_wide(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir(mode=0o755)
    StoreFiles(tmp_path / "store").open()
    assert mode_of(tmp_path / "store") == 0o700


def test_desired_and_reported_survive_a_reopen_with_their_versions(store: StoreFiles) -> None:
    desired = {"apps": {"app-a": "3"}, "nodeprops": {"k": "v"}}
    store.save_desired(desired, 7)
    store.save_reported({"apps": {"app-a": "2"}}, 6)
    reopened = StoreFiles(store.root)
    reopened.open()
    assert reopened.load_desired() == Snapshot(section=desired, version=7)
    assert reopened.load_reported() == Snapshot(section={"apps": {"app-a": "2"}}, version=6)
    store.save_desired({}, 8)
    assert reopened.load_desired() == Snapshot(section={}, version=8)
    assert mode_of(store.root / "desired.json") == 0o600


@pytest.mark.parametrize("version", [-1, True, 1.5, "3"])
def test_a_shadow_version_must_be_a_non_negative_integer(
    store: StoreFiles, version: object
) -> None:
    with pytest.raises(StoreError, match="shadow version"):
        store.save_desired({}, version)  # type: ignore[arg-type]


def test_resources_round_trip_by_kind_name_and_version(store: StoreFiles) -> None:
    app = application("app-a", "v1")
    cfg = config("cfg-a", "12", **{"conf.yml": "x: 1"})
    sec = secret("sec-a", "4")
    assert store.save_resource(app)
    assert store.save_resource(cfg)
    assert store.save_resource(sec)
    assert store.load_resource(ResourceKind.APPLICATION, "app-a", "v1") == app
    assert store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "12") == cfg
    assert store.load_resource(ResourceKind.SECRET, "sec-a", "4") == sec
    assert store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "13") is None
    assert store.load_resource(ResourceKind.SECRET, "cfg-a", "12") is None
    assert store.list_resources() == {
        (ResourceKind.APPLICATION, "app-a", "v1"),
        (ResourceKind.CONFIGURATION, "cfg-a", "12"),
        (ResourceKind.SECRET, "sec-a", "4"),
    }


def test_secrets_are_stored_owner_only(store: StoreFiles) -> None:
    store.save_resource(secret("sec-a", "4"))
    (path,) = (store.root / "resources" / "secret").iterdir()
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700


def test_a_stored_version_is_never_rewritten(store: StoreFiles) -> None:
    assert store.save_resource(config("cfg-a", "1", a="first"))
    path = store.root / "resources" / "configuration" / "cfg-a@1.json"
    before = path.stat()
    assert not store.save_resource(config("cfg-a", "1", a="different"))
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    loaded = store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "1")
    assert loaded is not None
    assert loaded.data == {"a": "first"}


def test_prune_keeps_only_what_is_still_referenced(store: StoreFiles) -> None:
    for version in ("1", "2", "3"):
        store.save_resource(config("cfg-a", version))
    store.save_resource(secret("sec-a", "1"))
    keep = {(ResourceKind.CONFIGURATION, "cfg-a", "3"), (ResourceKind.SECRET, "sec-a", "1")}
    removed = store.prune(keep)
    assert removed == {
        (ResourceKind.CONFIGURATION, "cfg-a", "1"),
        (ResourceKind.CONFIGURATION, "cfg-a", "2"),
    }
    assert store.list_resources() == keep
    assert store.prune(keep) == set()


def test_bad_names_and_versions_never_become_paths(store: StoreFiles) -> None:
    with pytest.raises(StoreError, match="bad version"):
        store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "../../etc")
    with pytest.raises(StoreError, match="not a valid resource name"):
        store.load_resource(ResourceKind.CONFIGURATION, "../x", "1")
    with pytest.raises(StoreError, match="bad version"):
        store.save_resource(config("cfg-a", ""))


def test_state_blobs_round_trip_and_can_be_deleted(store: StoreFiles) -> None:
    store.save_state("native.processes", {"app-a": [{"pid": 10, "start": 1.5}]})
    assert store.load_state("native.processes") == {"app-a": [{"pid": 10, "start": 1.5}]}
    store.delete_state("native.processes")
    store.delete_state("native.processes")
    assert store.load_state("native.processes") is None
    with pytest.raises(StoreError, match="state key"):
        store.save_state("../escape", {})


def test_a_damaged_resource_is_dropped_so_that_it_is_fetched_again(
    store: StoreFiles, caplog: pytest.LogCaptureFixture
) -> None:
    store.save_resource(config("cfg-a", "1"))
    store.save_resource(config("cfg-b", "1"))
    path_a = store.root / "resources" / "configuration" / "cfg-a@1.json"
    path_a.write_bytes(path_a.read_bytes()[:10])  # truncated
    path_b = store.root / "resources" / "configuration" / "cfg-b@1.json"
    path_b.write_text('{"name": "cfg-x", "version": "1"}')  # valid JSON, wrong resource
    with caplog.at_level(logging.WARNING, logger="agent.core.store"):
        assert store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "1") is None
        assert store.load_resource(ResourceKind.CONFIGURATION, "cfg-b", "1") is None
    assert [r.getMessage() for r in caplog.records] == [
        "dropping a damaged resource file; it will be fetched again"
    ] * 2
    assert not path_a.exists()
    assert not path_b.exists()
    assert store.save_resource(config("cfg-a", "1"))  # fetched again, stored again
    assert store.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "1") is not None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"format": 1, "version": 3, "sec',
        b"\xff\xfe",
        b"[]",
        b'{"format": 2, "version": 3, "section": {}}',
        b'{"format": 1, "version": -1, "section": {}}',
    ],
)
def test_a_damaged_desired_file_is_moved_aside_and_the_agent_starts_without_it(
    store: StoreFiles, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (store.root / "desired.json").write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="agent.core.store"):
        assert store.load_desired() is None
    assert "moved aside" in caplog.records[0].getMessage()
    assert (store.root / "desired.json.corrupt").read_bytes() == content
    assert not (store.root / "desired.json").exists()
    store.save_desired({"apps": {}}, 1)
    assert store.load_desired() == Snapshot(section={"apps": {}}, version=1)


def test_a_damaged_state_blob_reads_as_absent(store: StoreFiles) -> None:
    store.state_path("native").write_text('["not", "an", "object"]')
    assert store.load_state("native") is None
    assert store.state_path("native").with_name("native.json.corrupt").exists()


def test_opening_removes_temporaries_of_interrupted_writes(store: StoreFiles) -> None:
    leftovers = [
        store.root / ".desired.json.abc.tmp",
        store.root / "resources" / "secret" / ".sec-a@1.json.x.tmp",
        store.root / "state" / ".native.json.y.tmp",
    ]
    for path in leftovers:
        path.write_text("half")
    StoreFiles(store.root).open()
    assert not any(path.exists() for path in leftovers)
    assert store.list_resources() == set()


async def test_the_async_store_saves_in_order_and_snapshots_the_callers_dicts(
    tmp_path: Path,
) -> None:
    local = LocalStore(tmp_path / "store")
    await local.open()
    desired: dict[str, object] = {"apps": {"a": "1"}}
    await asyncio.gather(*(local.save_desired({"n": n}, n) for n in range(1, 21)))
    assert await local.load_desired() == Snapshot(section={"n": 20}, version=20)
    save = asyncio.create_task(local.save_desired(desired, 21))
    await asyncio.sleep(0)  # the save has started: its file write now runs in a thread
    desired["apps"] = {"changed": "after the call"}
    await save
    assert await local.load_desired() == Snapshot(section={"apps": {"a": "1"}}, version=21)


async def test_the_async_store_covers_every_operation(tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "store")
    await local.open()
    assert await local.save_resource(config("cfg-a", "1"))
    assert not await local.save_resource(config("cfg-a", "1"))
    loaded = await local.load_resource(ResourceKind.CONFIGURATION, "cfg-a", "1")
    assert loaded == config("cfg-a", "1")
    assert await local.list_resources() == {(ResourceKind.CONFIGURATION, "cfg-a", "1")}
    await local.save_reported({"apps": {}}, 4)
    assert await local.load_reported() == Snapshot(section={"apps": {}}, version=4)
    await local.save_state("k", {"x": 1})
    assert await local.load_state("k") == {"x": 1}
    await local.delete_state("k")
    assert await local.load_state("k") is None
    assert await local.prune(set()) == {(ResourceKind.CONFIGURATION, "cfg-a", "1")}
    assert local.root == tmp_path / "store"


# The writer saves desired, a resource and a state blob per round, prunes now and then, and
# prints the round number once all three are saved. Whatever instant SIGKILL lands on, the store
# must load, hold consistent files, and keep every round that was printed.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from agent.contracts.resources import Configuration, ResourceKind
    from agent.core.store import StoreFiles

    store = StoreFiles(Path(sys.argv[1]))
    store.open()
    last = store.load_desired()
    n = last.version if last else 0
    while True:
        n += 1
        store.save_desired({"n": n, "pad": "x" * (n * 37 % 20000)}, n)
        store.save_resource(
            Configuration(name=f"cfg-{n % 7}", version=str(n), data={"f": "y" * (n % 5000)})
        )
        store.save_state("writer", {"n": n})
        if n % 5 == 0:
            recent = range(n - 3, n + 1)
            store.prune({(ResourceKind.CONFIGURATION, f"cfg-{m % 7}", str(m)) for m in recent})
        print(n, flush=True)
    """
)


def test_killing_a_writer_at_any_instant_leaves_a_store_that_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "store"
    rng = random.Random(20240501)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    acknowledged = interrupted = 0
    for _ in range(20):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env, text=True
        )
        assert writer.stdout is not None
        for _ in range(rng.randint(1, 40)):
            line = writer.stdout.readline()
            assert line, "the writer died on its own"
            acknowledged = int(line)
        time.sleep(rng.uniform(0, 0.004))  # land anywhere in the next round, not just its start
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
        assert writer.returncode == -signal.SIGKILL

        interrupted += bool(list(root.rglob(".*.tmp")))
        with caplog.at_level(logging.WARNING, logger="agent.core.store"):
            store = StoreFiles(root)
            store.open()
            desired = store.load_desired()
            state = store.load_state("writer")
            resources = store.list_resources()
            loaded = [store.load_resource(*key) for key in resources]
        assert caplog.records == []  # nothing damaged, nothing moved aside or dropped
        assert desired is not None
        assert desired.section["n"] == desired.version >= acknowledged
        assert state is not None
        assert state["n"] >= acknowledged
        assert resources
        assert all(resource is not None for resource in loaded)
        assert not list(root.rglob("*.tmp"))
        assert not list(root.rglob("*.corrupt"))
    assert interrupted, "no kill landed inside a write; the test proved nothing"
