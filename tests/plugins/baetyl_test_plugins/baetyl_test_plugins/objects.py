"""Object storage plug-ins: `test-flat` keeps objects in `DATA_DIR/flat-objects/<namespace>/`
as blobs plus one `index.json` of names; `test-half` lacks most of the protocol.

A flat index is enough for tests (every write rewrites it); the built-in `directory` store
scales better. Blocking file work, as the protocol allows: the cloud calls it off its loop.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.contracts.kit.files import atomic_write
from agent.contracts.objects import check_bucket, check_object_name
from cloud.plugins import ObjectInfo
from cloud.settings import CloudSettings

INDEX = "index.json"


class FlatUpload:
    """Bytes kept in memory until `finish` writes the blob and the index."""

    def __init__(self, store: FlatObjectStore, namespace: str, key: str) -> None:
        self._store = store
        self._namespace = namespace
        self._key = key
        self._data = bytearray()

    def write(self, chunk: bytes) -> None:
        self._data += chunk

    def finish(self) -> tuple[ObjectInfo, str | None]:
        data = bytes(self._data)
        sha256 = hashlib.sha256(data).hexdigest()
        blob = self._store.blob_location(self._namespace, sha256, 0)
        if not blob.exists():
            atomic_write(blob, data)
        index = self._store.index(self._namespace)
        before = index.get(self._key, {}).get("sha256")
        now = datetime.now(UTC)
        record = {
            "size": len(data),
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "sha256": sha256,
            "updateTime": now.isoformat(),
        }
        index[self._key] = record
        self._store.save_index(self._namespace, index)
        bucket, name = self._key.split("/", 1)
        return _info(bucket, name, record), before if before != sha256 else None

    def __enter__(self) -> FlatUpload:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._data.clear()  # nothing was written before `finish`


class FlatObjectStore:
    """Objects of each namespace as `blobs/<sha256>` and `index.json` ("bucket/name": record)."""

    def __init__(self, settings: CloudSettings) -> None:
        self.root = settings.data_dir / "flat-objects"

    def index(self, namespace: str) -> dict[str, dict[str, Any]]:
        path = self.root / namespace / INDEX
        if not path.exists():
            return {}
        loaded: dict[str, dict[str, Any]] = json.loads(path.read_bytes())
        return loaded

    def save_index(self, namespace: str, index: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.root / namespace / INDEX, json.dumps(index, sort_keys=True).encode())

    def upload(self, namespace: str, bucket: str, name: str) -> FlatUpload:
        return FlatUpload(self, namespace, _key(bucket, name))

    def info(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        record = self.index(namespace).get(_key(bucket, name))
        return None if record is None else _info(bucket, name, record)

    def buckets(self, namespace: str) -> list[str]:
        return sorted({key.split("/", 1)[0] for key in self.index(namespace)})

    def objects(self, namespace: str, bucket: str) -> list[ObjectInfo]:
        check_bucket(bucket)
        return [
            _info(bucket, key.split("/", 1)[1], record)
            for key, record in sorted(self.index(namespace).items())
            if key.split("/", 1)[0] == bucket
        ]

    def delete(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        index = self.index(namespace)
        record = index.pop(_key(bucket, name), None)
        if record is None:
            return None
        self.save_index(namespace, index)
        return _info(bucket, name, record)

    def sweep(self, namespace: str, pinned: set[str]) -> list[str]:
        used = pinned | {record["sha256"] for record in self.index(namespace).values()}
        blobs = self.root / namespace / "blobs"
        removed = [blob.name for blob in blobs.glob("*") if blob.name not in used]
        for digest in removed:
            (blobs / digest).unlink()
        return removed

    def blob_location(self, namespace: str, sha256: str, ttl: int) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
        return self.root / namespace / "blobs" / sha256


class HalfObjectStore:
    """Uploads and reads, and nothing else: not an object store."""

    def __init__(self, settings: CloudSettings) -> None:
        del settings

    def upload(self, namespace: str, bucket: str, name: str) -> FlatUpload:
        raise NotImplementedError

    def info(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        return None


def _key(bucket: str, name: str) -> str:
    return f"{check_bucket(bucket)}/{check_object_name(name)}"


def _info(bucket: str, name: str, record: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        name=name,
        size=int(record["size"]),
        md5=str(record["md5"]),
        sha256=str(record["sha256"]),
        update_time=datetime.fromisoformat(record["updateTime"]),
    )
