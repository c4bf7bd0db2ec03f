"""The cloud's object store: upload, list, download, pinning in configurations, presigned URLs.

Everything goes through a real `baetyl-cloud` REST server; the presigned URL is the one the
cloud serves a node (`objects.served`, what `resources/get` answers with), fetched over HTTP.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.contracts.objects import OBJECT_PREFIX, ObjectItem
from cloud.api.keys import CONTEXT
from cloud.objects import presign
from cloud.objects.store import DirectoryObjectStore
from cloud.services import objects
from cloud.services.context import CloudContext
from cloud.settings import ObjectSettings
from cloud.store import configs as config_store
from tests.harness.cloud import CloudServer, start_cloud

CODE = b"def handler(event, context):\n    return event\n" * 20


def object_item(key: str = "code.zip", **value: Any) -> dict[str, Any]:
    """A configuration item of type object in the cloud's own store."""
    fields = {"type": "object", "source": "local", "bucket": "code", "object": "hello.zip"}
    return {"key": key, "value": {**fields, **value}}


def config_with(*items: dict[str, Any], name: str = "fn-code") -> dict[str, Any]:
    return {"name": name, "data": list(items)}


def context(cloud: CloudServer) -> CloudContext:
    assert cloud.app is not None
    return cloud.app[CONTEXT]


async def served_url(cloud: CloudServer, config: str, key: str = "code.zip") -> str:
    """The URL a node is given for the item (as `resources/get` serves it)."""
    stored = await config_store.get("default", config)
    assert stored is not None
    value = objects.served(context(cloud), "default", stored)
    item = ObjectItem.model_validate_json(value.data[OBJECT_PREFIX + key])
    return item.url


async def fetch(cloud: CloudServer, url: str) -> tuple[int, bytes]:
    async with cloud.session.get(url) as response:
        return response.status, await response.read()


async def test_an_upload_is_stored_listed_and_downloaded(cloud: CloudServer) -> None:
    record = await cloud.upload("code", "fns/hello.zip", CODE)
    assert record["size"] == len(CODE)
    assert record["md5"] == hashlib.md5(CODE, usedforsecurity=False).hexdigest()
    assert record["sha256"] == hashlib.sha256(CODE).hexdigest()
    listed = await cloud.ok("GET", "/v2/objects/local/buckets/code/objects")
    assert [(o["object"], o["sha256"]) for o in listed["objects"]] == [
        ("fns/hello.zip", record["sha256"])
    ]
    assert await cloud.ok("GET", "/v2/objects/local/buckets") == {
        "buckets": [{"name": "code", "objects": 1}]
    }
    assert await cloud.ok("GET", "/v2/objects") == {"sources": ["local"]}
    status, _ = await fetch(cloud, cloud.url + "/v1/objects/code/fns/hello.zip")
    assert status == 401  # no token
    reader = await cloud.token(role="read")
    headers = {"Authorization": f"Bearer {reader}"}
    async with cloud.session.get(
        cloud.url + "/v1/objects/code/fns/hello.zip", headers=headers
    ) as r:
        assert (r.status, await r.read()) == (200, CODE)


@pytest.mark.parametrize(
    ("bucket", "name", "fragment"),
    [
        ("A_B", "x", "bucket"),
        ("ab", "x", "bucket"),
        ("code", "a//b", "object name"),
        ("code", "x%00y", ""),
    ],
)
async def test_bad_object_names_are_refused(
    cloud: CloudServer, bucket: str, name: str, fragment: str
) -> None:
    answer = await cloud.call(
        "PUT", f"/v1/objects/{bucket}/{name}", raw=b"x", headers={"Content-Type": "x/y"}
    )
    assert 400 <= answer.status < 500, answer.body
    assert fragment in str(answer.body)
    assert (await cloud.ok("GET", "/v2/objects/local/buckets"))["buckets"] == []
    assert not list((cloud.data_dir / "objects").rglob("*.json"))


async def test_an_upload_over_the_limit_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    runner, cloud = await start_cloud(tmp_path / "c", None, objects=ObjectSettings(max_bytes=1000))
    try:
        await cloud.upload("code", "small", b"x" * 1000)
        answer = await cloud.call(
            "PUT", "/v1/objects/code/big", raw=b"x" * 5000, headers={"Content-Type": "x/y"}
        )
        assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
        assert "--object-max-bytes" in answer.body["message"]
        listed = await cloud.ok("GET", "/v2/objects/local/buckets/code/objects")
        assert [o["object"] for o in listed["objects"]] == ["small"]
        blobs = cloud.data_dir / "objects" / "default" / "blobs"
        assert [p.name for p in blobs.iterdir()] == [hashlib.sha256(b"x" * 1000).hexdigest()]
    finally:
        await cloud.session.close()
        await runner.cleanup()


async def test_a_configuration_pins_the_object_it_names(cloud: CloudServer) -> None:
    first = await cloud.upload("code", "hello.zip", CODE)
    created = await cloud.ok("POST", "/v1/configs", config_with(object_item(unpack="zip")))
    [item] = created["data"]
    assert item["key"] == "code.zip"
    assert item["value"] == {
        "type": "object",
        "source": "local",
        "bucket": "code",
        "object": "hello.zip",
        "unpack": "zip",
        "md5": first["md5"],
        "sha256": first["sha256"],
        "size": len(CODE),
    }
    # The same body again: nothing changed, the version stays.
    again = await cloud.ok("PUT", "/v1/configs/fn-code", config_with(object_item(unpack="zip")))
    assert again["version"] == created["version"]
    # New bytes under the name: the configuration still pins the old ones until saved again.
    second = await cloud.upload("code", "hello.zip", CODE + b"# v2\n")
    kept = await cloud.ok("GET", "/v1/configs/fn-code")
    assert kept["data"][0]["value"]["sha256"] == first["sha256"]
    status, body = await fetch(cloud, await served_url(cloud, "fn-code"))
    assert (status, body) == (200, CODE)  # the pinned bytes, though the name moved on
    saved = await cloud.ok("PUT", "/v1/configs/fn-code", config_with(object_item(unpack="zip")))
    assert saved["data"][0]["value"]["sha256"] == second["sha256"]
    assert saved["version"] != created["version"]
    status, body = await fetch(cloud, await served_url(cloud, "fn-code"))
    assert (status, body) == (200, CODE + b"# v2\n")


async def test_a_digest_that_is_not_the_objects_is_refused(cloud: CloudServer) -> None:
    await cloud.upload("code", "hello.zip", CODE)
    wrong = hashlib.md5(b"other", usedforsecurity=False).hexdigest()
    answer = await cloud.call("POST", "/v1/configs", config_with(object_item(md5=wrong)))
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "md5" in answer.body["message"]
    assert (await cloud.ok("GET", "/v1/configs"))["total"] == 0


async def test_http_items_are_passed_through_as_given(cloud: CloudServer) -> None:
    item = {"type": "object", "source": "http", "url": "https://files.example/x.tgz"}
    item |= {"unpack": "tar.gz", "sha256": "a" * 64}
    created = await cloud.ok("POST", "/v1/configs", config_with({"key": "x", "value": item}))
    assert created["data"] == [{"key": "x", "value": item}]
    stored = await config_store.get("default", "fn-code")
    assert stored is not None
    assert objects.served(context(cloud), "default", stored) == stored


async def test_an_object_in_use_cannot_be_deleted(cloud: CloudServer) -> None:
    await cloud.upload("code", "hello.zip", CODE)
    await cloud.ok("POST", "/v1/configs", config_with(object_item()))
    answer = await cloud.call("DELETE", "/v1/objects/code/hello.zip")
    assert (answer.status, answer.body["code"]) == (403, "ErrResourceHasBeenUsed")
    assert "fn-code" in answer.body["message"]
    await cloud.ok("DELETE", "/v1/configs/fn-code")
    await cloud.ok("DELETE", "/v1/objects/code/hello.zip")
    gone = await cloud.call("GET", "/v1/objects/code/hello.zip")
    assert (gone.status, gone.body["code"]) == (404, "ErrResourceNotFound")
    assert list((cloud.data_dir / "objects" / "default" / "blobs").iterdir()) == []


async def test_a_replaced_object_is_swept_once_nothing_pins_it(cloud: CloudServer) -> None:
    first = await cloud.upload("code", "hello.zip", CODE)
    await cloud.ok("POST", "/v1/configs", config_with(object_item()))
    await cloud.upload("code", "hello.zip", b"two")
    blobs = cloud.data_dir / "objects" / "default" / "blobs"
    assert first["sha256"] in {p.name for p in blobs.iterdir()}  # pinned by fn-code
    await cloud.ok("DELETE", "/v1/configs/fn-code")
    await cloud.upload("code", "hello.zip", b"three")
    assert {p.name for p in blobs.iterdir()} == {hashlib.sha256(b"three").hexdigest()}


async def test_a_presigned_url_is_refused_when_forged_or_expired(cloud: CloudServer) -> None:
    record = await cloud.upload("code", "hello.zip", CODE)
    await cloud.ok("POST", "/v1/configs", config_with(object_item()))
    url = await served_url(cloud, "fn-code")
    assert (await fetch(cloud, url)) == (200, CODE)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"

    async def refused(target: str, fragment: str) -> None:
        async with cloud.session.get(target) as response:
            body = await response.json()
            assert response.status == 403, body
            assert fragment in body["message"]

    later = int(query["expires"]) + 3600
    await refused(f"{base}?expires={later}&signature={query['signature']}", "signature")
    await refused(f"{base}?expires={query['expires']}&signature={'0' * 64}", "signature")
    await refused(base, "expires")
    other = hashlib.sha256(b"other").hexdigest()
    await refused(url.replace(record["sha256"], other), "signature")
    # Signed for another namespace: no good for this one's blob, and the reverse.
    await refused(url.replace("/default/", "/other/"), "signature")
    key = context(cloud).secrets.derive_key(presign.HKDF_INFO)
    expired = presign.url(cloud.url, key, "default", record["sha256"], int(time.time()) - 1)
    await refused(expired, "expired")
    # A key that is not the cloud's cannot sign.
    forged = presign.url(cloud.url, b"k" * 32, "default", record["sha256"], later)
    await refused(forged, "signature")


async def test_another_tenant_can_neither_see_nor_name_the_object(cloud: CloudServer) -> None:
    await cloud.upload("code", "hello.zip", CODE)
    other = await cloud.token(namespace="tenant-b")
    listed = await cloud.ok("GET", "/v2/objects/local/buckets", token=other)
    assert listed == {"buckets": []}
    answer = await cloud.call("GET", "/v1/objects/code/hello.zip", token=other)
    assert (answer.status, answer.body["code"]) == (404, "ErrResourceNotFound")
    answer = await cloud.call("POST", "/v1/configs", config_with(object_item()), token=other)
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "upload it first" in answer.body["message"]
    answer = await cloud.call("DELETE", "/v1/objects/code/hello.zip", token=other)
    assert answer.status == 404


async def test_a_read_token_cannot_upload_or_delete(cloud: CloudServer) -> None:
    await cloud.upload("code", "hello.zip", CODE)
    reader = await cloud.token(role="read")
    await cloud.all_refused(
        reader,
        403,
        [("PUT", "/v1/objects/code/hello.zip", {}), ("DELETE", "/v1/objects/code/hello.zip", None)],
    )
    assert (await cloud.ok("GET", "/v2/objects/local/buckets/code/objects"))["objects"][0][
        "size"
    ] == len(CODE)


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\x00b", ""])
def test_the_store_refuses_names_that_would_leave_the_bucket(tmp_path: Path, name: str) -> None:
    store = DirectoryObjectStore(tmp_path / "objects", max_bytes=10)
    with pytest.raises(ValueError, match="object name"):
        store.upload("default", "code", name)
    assert not (tmp_path / "objects").exists() or not list((tmp_path / "objects").rglob("*.json"))
