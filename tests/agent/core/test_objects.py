"""The node's object cache against a real HTTP server: verify, unpack, cache, refuse, retry."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from agent.contracts.resources import Configuration
from agent.core.archives import UnpackLimits
from agent.core.objects import CacheSettings, ObjectCache, ObjectError, config_tree
from tests.harness.common import free_port
from tests.harness.files import FileServer, file_server


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    async with file_server() as served:
        yield served


@pytest.fixture
def cache(tmp_path: Path) -> ObjectCache:
    return ObjectCache(
        CacheSettings(
            root=tmp_path / "objects",
            max_bytes=100_000,
            unpack=UnpackLimits(max_bytes=200_000, max_members=100),
            timeout=10,
        )
    )


def item(server: FileServer, name: str, data: bytes, **fields: Any) -> ObjectItem:
    values: dict[str, Any] = {
        "source": "local",
        "bucket": "code",
        "object": name,
        "url": f"{server.url}/files/{name}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    return ObjectItem.model_validate({**values, **fields})


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_a_file_is_downloaded_once_and_cached_by_digest(
    server: FileServer, cache: ObjectCache
) -> None:
    server.files["a.bin"] = b"hello object"
    wanted = item(server, "a.bin", b"hello object")
    path = await cache.ensure(wanted)
    assert path.read_bytes() == b"hello object"
    again = await cache.ensure(item(server, "a.bin", b"hello object", bucket="other"))
    assert again == path
    assert server.hits == {"a.bin": 1}
    assert cache.downloads == 1


async def test_concurrent_requests_for_one_object_download_it_once(
    server: FileServer, cache: ObjectCache
) -> None:
    server.files["a.bin"] = b"x" * 50_000
    wanted = item(server, "a.bin", b"x" * 50_000)
    paths = await asyncio.gather(*(cache.ensure(wanted) for _ in range(5)))
    assert len(set(paths)) == 1
    assert server.hits == {"a.bin": 1}


@pytest.mark.parametrize("digest", ["sha256", "md5", "size"])
async def test_a_wrong_digest_is_refused_leaves_nothing_and_is_retried(
    server: FileServer, cache: ObjectCache, digest: str
) -> None:
    good = b"the real bytes"
    wanted = item(server, "a.bin", good, sha256="", size=None)
    if digest == "md5":
        wanted = wanted.model_copy(
            update={"md5": hashlib.md5(good, usedforsecurity=False).hexdigest()}
        )
    elif digest == "sha256":
        wanted = wanted.model_copy(update={"sha256": hashlib.sha256(good).hexdigest()})
    else:
        wanted = wanted.model_copy(
            update={"sha256": hashlib.sha256(good).hexdigest(), "size": len(good)}
        )
    server.files["a.bin"] = b"tampered bytes!!" if digest != "size" else good + b"more"
    with pytest.raises(ObjectError) as refused:
        await cache.ensure(wanted)
    assert not refused.value.stale
    assert digest in str(refused.value) or "bytes" in str(refused.value)
    assert not cache.path_of(wanted).exists()
    assert [p for p in cache.root.rglob("*") if p.is_file()] == []  # no temporary left either
    server.files["a.bin"] = good  # the server is fixed: the next try succeeds
    assert (await cache.ensure(wanted)).read_bytes() == good


async def test_an_archive_is_unpacked_into_the_cache(
    server: FileServer, cache: ObjectCache
) -> None:
    data = zipped({"index.py": b"def handler(e, c):\n    return e\n", "lib/x.py": b"X = 1\n"})
    server.files["code.zip"] = data
    path = await cache.ensure(item(server, "code.zip", data, unpack="zip"))
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*.py")) == [
        "index.py",
        "lib/x.py",
    ]
    assert not (path.parent / "blob").exists()  # the archive itself is not kept


async def test_a_hostile_archive_is_refused_and_not_kept(
    server: FileServer, cache: ObjectCache
) -> None:
    data = zipped({"ok.py": b"", "../../escaped.py": b"evil"})
    server.files["evil.zip"] = data
    wanted = item(server, "evil.zip", data, unpack="zip")
    with pytest.raises(ObjectError, match="archive is refused"):
        await cache.ensure(wanted)
    assert not cache.path_of(wanted).exists()
    assert not list(cache.root.parent.rglob("escaped.py"))
    assert [p for p in cache.root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(("source", "stale"), [("local", True), ("http", False)])
async def test_a_refused_url_is_stale_only_when_the_cloud_signed_it(
    server: FileServer, cache: ObjectCache, source: str, stale: bool
) -> None:
    server.status["a.bin"] = 403
    wanted = item(server, "a.bin", b"x", source=source)
    with pytest.raises(ObjectError, match="HTTP 403") as refused:
        await cache.ensure(wanted)
    assert refused.value.stale is stale


async def test_a_download_over_the_limit_is_refused(server: FileServer, cache: ObjectCache) -> None:
    big = b"x" * 100_001
    server.files["big"] = big
    with pytest.raises(ObjectError, match=r"objects\.max_bytes"):
        await cache.ensure(item(server, "big", big))
    assert [p for p in cache.root.rglob("*") if p.is_file()] == []


async def test_an_unreachable_server_is_a_retryable_error(cache: ObjectCache) -> None:
    wanted = ObjectItem(source="http", url=f"http://127.0.0.1:{free_port()}/x")
    with pytest.raises(ObjectError, match="download failed") as refused:
        await cache.ensure(wanted)
    assert not refused.value.stale


async def test_prune_keeps_only_what_is_named(server: FileServer, cache: ObjectCache) -> None:
    server.files["a"] = b"a"
    server.files["b"] = b"b"
    first, second = item(server, "a", b"a"), item(server, "b", b"b")
    await cache.ensure(first)
    await cache.ensure(second)
    keep = Configuration(name="conf", version="c2", data={f"{OBJECT_PREFIX}b": second.to_text()})
    old = Configuration(name="conf", version="c1", data={f"{OBJECT_PREFIX}a": first.to_text()})
    config_tree(cache.root, keep)
    config_tree(cache.root, old)
    assert sorted(cache.prune([keep])) == [f"sha256-{first.sha256}", "volumes/conf@c1"]
    assert not cache.path_of(first).exists()
    assert cache.path_of(second).exists()
    assert (cache.root / "volumes" / "conf@c2" / "b").read_bytes() == b"b"


async def test_a_config_tree_holds_text_and_unpacked_items(
    server: FileServer, cache: ObjectCache
) -> None:
    data = zipped({"index.py": b"x = 1\n", "lib/u.py": b""})
    server.files["code.zip"] = data
    wanted = item(server, "code.zip", data, unpack="zip")
    config = Configuration(
        name="code",
        version="v1",
        data={"note.txt": "hi", f"{OBJECT_PREFIX}code.zip": wanted.to_text()},
    )
    await cache.prepare([config])
    tree = config_tree(cache.root, config)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "index.py",
        "lib/u.py",
        "note.txt",
    ]
    assert config_tree(cache.root, config) == tree  # made once per version


async def test_a_pinned_entry_outlives_prunes_until_unpinned(
    server: FileServer, cache: ObjectCache
) -> None:
    server.files["wheel"] = b"w" * 100
    wheel = item(server, "wheel", b"w" * 100)
    with cache.pinned(wheel):
        path = await cache.ensure(wheel)
        with cache.pinned(wheel):
            pass  # pins nest: the inner end does not unpin
        assert cache.prune([]) == []
        assert path.read_bytes() == b"w" * 100
    assert cache.prune([]) == [f"sha256-{wheel.sha256}"]
    assert not path.exists()
