"""The object store on S3-compatible storage (moto's server): the same routes and rules as the
embedded store, the bytes kept in the storage, nodes given the storage's presigned URLs."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from agent.core.objects import CacheSettings, ObjectCache
from cloud.api.keys import CONTEXT
from cloud.objects.s3 import S3Settings
from cloud.services import objects
from cloud.settings import ObjectSettings
from cloud.store import configs as config_store
from tests.harness.cloud import CloudServer, start_cloud
from tests.harness.s3 import S3Server, s3_server

CODE = b"def handler(event, context):\n    return event\n"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3_server(monkeypatch) as server:
        yield server


@pytest.fixture
async def s3_cloud(tmp_path: Path, s3: S3Server) -> AsyncIterator[CloudServer]:
    settings = ObjectSettings(s3=S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint))
    runner, server = await start_cloud(tmp_path / "cloud", None, objects=settings)
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


def keys(s3: S3Server, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def code_config(name: str = "fn-code") -> dict[str, object]:
    item = {"type": "object", "source": "local", "bucket": "code", "object": "hello.zip"}
    return {"name": name, "data": [{"key": "code.zip", "value": item}]}


async def test_uploads_go_to_the_storage_and_are_listed_and_downloaded(
    s3_cloud: CloudServer, s3: S3Server
) -> None:
    cloud = s3_cloud
    record = await cloud.upload("code", "fns/hello.zip", CODE)
    assert record["sha256"] == hashlib.sha256(CODE).hexdigest()
    assert keys(s3, "default/") == [
        f"default/blobs/{record['sha256']}",
        "default/names/code/fns/hello.zip.json",
    ]
    assert not (cloud.data_dir / "objects").exists()  # nothing in the data directory
    listed = await cloud.ok("GET", "/v2/objects/local/buckets/code/objects")
    assert [o["object"] for o in listed["objects"]] == ["fns/hello.zip"]
    assert await cloud.ok("GET", "/v2/objects/local/buckets") == {
        "buckets": [{"name": "code", "objects": 1}]
    }
    headers = {"Authorization": f"Bearer {cloud.admin_token}"}
    url = cloud.url + "/v1/objects/code/fns/hello.zip"
    async with cloud.session.get(url, headers=headers, allow_redirects=False) as answer:
        assert answer.status == 307
        assert answer.headers["Location"].startswith(s3.endpoint)
    async with cloud.session.get(url, headers=headers) as answer:
        assert (answer.status, await answer.read()) == (200, CODE)


async def test_a_node_downloads_the_pinned_bytes_from_the_storage(
    s3_cloud: CloudServer, s3: S3Server, tmp_path: Path
) -> None:
    cloud = s3_cloud
    first = await cloud.upload("code", "hello.zip", CODE)
    await cloud.ok("POST", "/v1/configs", code_config())
    await cloud.upload("code", "hello.zip", CODE + b"# v2\n")  # the name moves on
    stored = await config_store.get("default", "fn-code")
    assert stored is not None
    assert cloud.app is not None
    served = objects.served(cloud.app[CONTEXT], "default", stored)
    item = ObjectItem.model_validate_json(served.data[f"{OBJECT_PREFIX}code.zip"])
    assert item.url.startswith(f"{s3.endpoint}/{s3.bucket}/default/blobs/{first['sha256']}?")
    cache = ObjectCache(CacheSettings(root=tmp_path / "objects", timeout=10))
    path = await cache.ensure(item)  # what the node does: download, check the digest
    assert path.read_bytes() == CODE


async def test_blobs_nothing_refers_to_are_swept_from_the_storage(
    s3_cloud: CloudServer, s3: S3Server
) -> None:
    cloud = s3_cloud
    first = await cloud.upload("code", "hello.zip", CODE)
    await cloud.ok("POST", "/v1/configs", code_config())
    second = await cloud.upload("code", "hello.zip", b"two")
    assert f"default/blobs/{first['sha256']}" in keys(s3, "default/blobs/")  # pinned
    refused = await cloud.call("DELETE", "/v1/objects/code/hello.zip")
    assert (refused.status, refused.body["code"]) == (403, "ErrResourceHasBeenUsed")
    await cloud.ok("DELETE", "/v1/configs/fn-code")
    await cloud.ok("DELETE", "/v1/objects/code/hello.zip")
    assert keys(s3, "default/") == []
    del second


async def test_another_tenant_sees_nothing_of_it(s3_cloud: CloudServer) -> None:
    cloud = s3_cloud
    await cloud.upload("code", "hello.zip", CODE)
    other = await cloud.token(namespace="tenant-b")
    assert await cloud.ok("GET", "/v2/objects/local/buckets", token=other) == {"buckets": []}
    answer = await cloud.call("GET", "/v1/objects/code/hello.zip", token=other)
    assert answer.status == 404
    answer = await cloud.call("POST", "/v1/configs", code_config(), token=other)
    assert "upload it first" in answer.body["message"]
