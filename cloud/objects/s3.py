"""The object store on S3-compatible storage (`baetyl-cloud serve --object-store s3`).

The same layout as the embedded store (cloud.objects.store), as keys of one S3 bucket:
`<namespace>/blobs/<sha256>` for the bytes and `<namespace>/names/<bucket>/<object>.json` for
the names. Every replica of the cloud then sees the same objects, and nodes download the bytes
straight from the storage through its own presigned URLs, as Baetyl's object plugins do.
Uploads are staged in a private temporary file (to learn the digest first) and sent with
boto3's managed transfer. boto3 is blocking: the services call every method through
`asyncio.to_thread`. Credentials come from boto3's usual chain (`AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY`, `~/.aws`, an instance role): never from the command line.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.contracts.kit.files import BlobDigest, BlobWriter
from agent.contracts.objects import check_bucket, check_object_name
from cloud.objects.store import ObjectInfo, new_record, parse_record

if TYPE_CHECKING:
    from botocore.config import _S3Dict as _S3Config
    from mypy_boto3_s3 import S3Client

    from cloud.plugins import ObjectStore
    from cloud.settings import CloudSettings

META_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class S3Settings:
    """Where the objects are kept: one bucket of an S3-compatible service.

    Attributes:
        bucket: the S3 bucket (created by the operator; the cloud only reads and writes keys).
        endpoint_url: the service's URL (None: AWS itself); a MinIO or Ceph gateway otherwise.
        region: the region to sign for.
        path_style: address the bucket in the path (`host/bucket/key`), as most
            self-hosted services want, rather than as a subdomain.
    """

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    path_style: bool = True


class S3Upload:
    """Bytes being uploaded under a name: staged on disk, then sent (see DirectoryObjectStore)."""

    def __init__(self, store: S3ObjectStore, namespace: str, bucket: str, name: str) -> None:
        self._store = store
        self._namespace = namespace
        self._bucket = bucket
        self._name = name
        self._writer = BlobWriter(store.staging / "upload", max_bytes=store.max_bytes)

    def write(self, chunk: bytes) -> None:
        """Append bytes (TooLarge past the store's limit)."""
        self._writer.write(chunk)

    def finish(self) -> tuple[ObjectInfo, str | None]:
        """Send the blob (unless the storage has it) and point the name at it."""
        digest = self._writer.digest()
        key = self._store.blob_key(self._namespace, digest.sha256)
        if self._store.exists(key):
            self._writer.discard()
        else:
            staged = self._store.staging / f"{digest.sha256}.{uuid.uuid4().hex}"
            self._writer.commit(staged)
            try:
                self._store.client.upload_file(str(staged), self._store.settings.bucket, key)
            finally:
                staged.unlink(missing_ok=True)
        return self._store.point(self._namespace, self._bucket, self._name, digest)

    def __enter__(self) -> S3Upload:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._writer.__exit__(kind, value, traceback)


class S3ObjectStore:
    """Objects as keys of an S3 bucket."""

    def __init__(self, settings: S3Settings, *, max_bytes: int, staging: Path) -> None:
        import boto3  # noqa: PLC0415 - the `s3` extra: only a cloud configured for S3 loads it
        from botocore.config import Config  # noqa: PLC0415

        self.settings = settings
        self.max_bytes = max_bytes
        self.staging = staging
        addressing: _S3Config = {"addressing_style": "path" if settings.path_style else "virtual"}
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            config=Config(s3=addressing, signature_version="s3v4"),
        )

    @staticmethod
    def blob_key(namespace: str, sha256: str) -> str:
        """The key of the bytes with this SHA-256."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
        return f"{namespace}/blobs/{sha256}"

    @staticmethod
    def _meta_key(namespace: str, bucket: str, name: str) -> str:
        check_bucket(bucket)
        check_object_name(name)
        return f"{namespace}/names/{bucket}/{name}{META_SUFFIX}"

    def exists(self, key: str) -> bool:
        """Whether the storage holds `key`."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            self.client.head_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def upload(self, namespace: str, bucket: str, name: str) -> S3Upload:
        """Start storing bytes under `bucket/name` (ValueError for a bad bucket or name)."""
        self._meta_key(namespace, bucket, name)
        self.staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        return S3Upload(self, namespace, bucket, name)

    def point(
        self, namespace: str, bucket: str, name: str, digest: BlobDigest
    ) -> tuple[ObjectInfo, str | None]:
        """Make `bucket/name` refer to a stored blob; returns it and the blob it referred to."""
        previous = self.info(namespace, bucket, name)
        meta, now = new_record(digest)
        self.client.put_object(
            Bucket=self.settings.bucket,
            Key=self._meta_key(namespace, bucket, name),
            Body=json.dumps(meta).encode(),
            ContentType="application/json",
        )
        info = ObjectInfo(bucket, name, digest.size, digest.md5, digest.sha256, now)
        replaced = None if previous is None else previous.sha256
        return info, None if replaced == digest.sha256 else replaced

    def info(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """The object named `bucket/name`, or None."""
        raw = self._read_json(self._meta_key(namespace, bucket, name))
        if raw is None:
            return None
        return parse_record(bucket, name, raw)

    def buckets(self, namespace: str) -> list[str]:
        """The namespace's buckets that hold at least one object, sorted."""
        prefix = f"{namespace}/names/"
        found = set()
        for key in self._keys(prefix):
            found.add(key[len(prefix) :].split("/", 1)[0])
        return sorted(found)

    def objects(self, namespace: str, bucket: str) -> list[ObjectInfo]:
        """The objects of a bucket, sorted by name."""
        check_bucket(bucket)
        prefix = f"{namespace}/names/{bucket}/"
        found: list[ObjectInfo] = []
        for key in self._keys(prefix):
            raw = self._read_json(key)
            if raw is not None and key.endswith(META_SUFFIX):
                found.append(parse_record(bucket, key[len(prefix) : -len(META_SUFFIX)], raw))
        return sorted(found, key=lambda i: i.name)

    def delete(self, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
        """Remove the name (the blob goes at the next `sweep`); returns what it was, or None."""
        info = self.info(namespace, bucket, name)
        if info is not None:
            key = self._meta_key(namespace, bucket, name)
            self.client.delete_object(Bucket=self.settings.bucket, Key=key)
        return info

    def sweep(self, namespace: str, pinned: set[str]) -> list[str]:
        """Delete the blobs no name and no digest in `pinned` refers to; returns them."""
        used = set(pinned)
        for key in self._keys(f"{namespace}/names/"):
            raw = self._read_json(key)
            if raw is not None:
                used.add(str(raw.get("sha256", "")))
        removed = []
        prefix = f"{namespace}/blobs/"
        for key in self._keys(prefix):
            digest = key[len(prefix) :]
            if digest not in used:
                self.client.delete_object(Bucket=self.settings.bucket, Key=key)
                removed.append(digest)
        return removed

    def blob_location(self, namespace: str, sha256: str, ttl: int) -> str:
        """The storage's own presigned URL of the blob (nodes and admins download from it)."""
        return self.download_url(namespace, sha256, ttl)

    def download_url(self, namespace: str, sha256: str, ttl: int) -> str:
        """A presigned GET of the blob, valid `ttl` seconds (the storage checks it)."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.settings.bucket, "Key": self.blob_key(namespace, sha256)},
            ExpiresIn=ttl,
        )

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return keys

    def _read_json(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            answer = self.client.get_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        loaded = json.loads(answer["Body"].read())
        return loaded if isinstance(loaded, dict) else None


def s3_store(settings: CloudSettings) -> ObjectStore:
    """The built-in object storage plug-in `s3` (setup.cfg): the bucket of `objects.s3`, with
    uploads staged in `DATA_DIR/objects-staging`."""
    if settings.objects.s3 is None:
        raise ValueError("it needs an S3 bucket (baetyl-cloud serve --s3-bucket NAME)")
    staging = settings.data_dir / "objects-staging"
    return S3ObjectStore(settings.objects.s3, max_bytes=settings.objects.max_bytes, staging=staging)
