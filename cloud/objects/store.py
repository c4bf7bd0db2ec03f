"""The embedded object store: content-addressed blobs under `DATA_DIR/objects`, per namespace.

Layout, per namespace:
- `blobs/<sha256>`: the bytes, named by their SHA-256;
- `names/<bucket>/<object>.json`: what the name points at (`size`, `md5`, `sha256`, `updateTime`).

Names point at blobs, and configurations pin a blob's digest when they are saved: uploading new
bytes under an existing name moves the name, while the nodes of a configuration saved earlier
still download exactly the bytes it pinned. A blob is deleted when neither a name nor a
configuration refers to it any more (`sweep`; the service runs uploads and sweeps of a namespace
one at a time, so a sweep never sees a blob whose name is not written yet). Every call is
blocking file work: the services run them through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from agent.contracts.kit.files import BlobDigest, BlobWriter, atomic_write, sync_directory
from agent.contracts.objects import check_bucket, check_object_name

if TYPE_CHECKING:
    from cloud.plugins import ObjectStore
    from cloud.settings import CloudSettings

BLOBS: Final = "blobs"
NAMES: Final = "names"
META_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class ObjectInfo:
    """A named object: where it is and what its bytes are."""

    bucket: str
    name: str
    size: int
    md5: str
    sha256: str
    update_time: datetime


def new_record(digest: BlobDigest) -> tuple[dict[str, object], datetime]:
    """What a name's record says of the bytes it now points at, and when that was written."""
    now = datetime.now(UTC)
    record = {"size": digest.size, "md5": digest.md5, "sha256": digest.sha256}
    return {**record, "updateTime": now.isoformat()}, now


def parse_record(bucket: str, name: str, raw: object) -> ObjectInfo:
    """A name's record (JSON) as an ObjectInfo; ValueError when it cannot be read."""
    if not isinstance(raw, dict):
        raise ValueError(f"object {bucket}/{name}: its record is not a JSON object")  # noqa: TRY004
    try:
        return ObjectInfo(
            bucket=bucket,
            name=name,
            size=int(raw["size"]),
            md5=str(raw["md5"]),
            sha256=str(raw["sha256"]),
            update_time=datetime.fromisoformat(raw["updateTime"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"object {bucket}/{name}: its record is unreadable ({exc})") from exc


class Upload:
    """Bytes being uploaded under a name; `finish` stores them, leaving the `with` drops them."""

    def __init__(self, store: DirectoryObjectStore, namespace: str, bucket: str, name: str) -> None:
        self._store = store
        self._namespace = namespace
        self._bucket = bucket
        self._name = name
        blobs = store.namespace_dir(namespace) / BLOBS
        self._writer = BlobWriter(blobs / "upload", max_bytes=store.max_bytes, mode=0o600)

    def write(self, chunk: bytes) -> None:
        """Append bytes (TooLarge past the store's limit)."""
        self._writer.write(chunk)

    def finish(self) -> tuple[ObjectInfo, str | None]:
        """Store the blob and point the name at it; returns the object and the blob it replaced."""
        digest = self._writer.digest()
        blob = self._store.blob_path(self._namespace, digest.sha256)
        if blob.exists():
            self._writer.discard()
        else:
            self._writer.commit(blob)
        return self._store.point(self._namespace, self._bucket, self._name, digest)

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._writer.__exit__(kind, value, traceback)


class DirectoryObjectStore:
    """Objects as files in a directory of the cloud's data directory (the default store)."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def namespace_dir(self, namespace: str) -> Path:
        """Where one namespace's objects lie."""
        return self.root / namespace

    def blob_path(self, namespace: str, sha256: str) -> Path:
        """The file holding the bytes with this SHA-256 (it may not exist)."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
        return self.namespace_dir(namespace) / BLOBS / sha256

    def blob_location(self, namespace: str, sha256: str, ttl: int) -> Path:
        """The file of the blob: the cloud sends it and signs node URLs itself (`ttl` unused)."""
        del ttl
        return self.blob_path(namespace, sha256)

    def upload(self, namespace: str, bucket: str, name: str) -> Upload:
        """Start storing bytes under `bucket/name` (ValueError for a bad bucket or name)."""
        check_bucket(bucket)
        check_object_name(name)
        return Upload(self, namespace, bucket, name)

    def point(
        self, namespace: str, bucket: str, name: str, digest: BlobDigest
    ) -> tuple[ObjectInfo, str | None]:
        """Make `bucket/name` refer to a stored blob; returns it and the blob it referred to."""
        previous = self.info(namespace, bucket, name)
        meta, now = new_record(digest)
        atomic_write(self._meta_path(namespace, bucket, name), json.dumps(meta).encode())
        info = ObjectInfo(bucket, name, digest.size, digest.md5, digest.sha256, now)
        replaced = None if previous is None else previous.sha256
        return info, None if replaced == digest.sha256 else replaced

    def info(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """The object named `bucket/name`, or None."""
        return self._read_meta(namespace, bucket, name, self._meta_path(namespace, bucket, name))

    def buckets(self, namespace: str) -> list[str]:
        """The namespace's buckets that hold at least one object, sorted."""
        names = self.namespace_dir(namespace) / NAMES
        with contextlib.suppress(FileNotFoundError):
            return sorted(p.name for p in names.iterdir() if p.is_dir() and any(self._metas(p)))
        return []

    def objects(self, namespace: str, bucket: str) -> list[ObjectInfo]:
        """The objects of a bucket, sorted by name."""
        check_bucket(bucket)
        top = self.namespace_dir(namespace) / NAMES / bucket
        found: list[ObjectInfo] = []
        for meta in self._metas(top):
            name = meta.relative_to(top).as_posix().removesuffix(META_SUFFIX)
            info = self._read_meta(namespace, bucket, name, meta)
            if info is not None:
                found.append(info)
        return sorted(found, key=lambda i: i.name)

    def delete(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """Remove the name (not the blob: `sweep` does); returns what it was, or None."""
        info = self.info(namespace, bucket, name)
        if info is None:
            return None
        meta = self._meta_path(namespace, bucket, name)
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        sync_directory(meta.parent)
        return info

    def sweep(self, namespace: str, pinned: set[str]) -> list[str]:
        """Delete the blobs that no name and no digest in `pinned` refers to; returns them."""
        blobs = self.namespace_dir(namespace) / BLOBS
        top = self.namespace_dir(namespace) / NAMES
        used = set(pinned)
        for meta in self._metas(top):
            with contextlib.suppress(OSError, ValueError, KeyError):
                used.add(json.loads(meta.read_bytes())["sha256"])
        removed: list[str] = []
        with contextlib.suppress(FileNotFoundError):
            for blob in blobs.iterdir():
                if blob.name in used or len(blob.name) != 64:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    blob.unlink()
                    removed.append(blob.name)
        return removed

    def _meta_path(self, namespace: str, bucket: str, name: str) -> Path:
        check_bucket(bucket)
        check_object_name(name)
        return self.namespace_dir(namespace) / NAMES / bucket / f"{name}{META_SUFFIX}"

    def _read_meta(self, namespace: str, bucket: str, name: str, meta: Path) -> ObjectInfo | None:
        try:
            raw = json.loads(meta.read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"object {bucket}/{name}: its record is unreadable ({exc})") from exc
        info = parse_record(bucket, name, raw)
        if not self.blob_path(namespace, info.sha256).exists():
            return None
        return info

    @staticmethod
    def _metas(top: Path) -> Iterator[Path]:
        if not top.is_dir():
            return
        for directory, _dirs, files in os.walk(top):
            for file in files:
                if file.endswith(META_SUFFIX) and not file.startswith("."):
                    yield Path(directory) / file


def directory_store(settings: CloudSettings) -> ObjectStore:
    """The built-in object storage plug-in `directory`: `DATA_DIR/objects` (setup.cfg)."""
    return DirectoryObjectStore(settings.objects_dir, max_bytes=settings.objects.max_bytes)
