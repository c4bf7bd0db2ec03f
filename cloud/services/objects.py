"""Object use cases: upload, list, download, delete; pin configurations' items; presign for nodes.

Objects live in the cloud's object store, per namespace: the object storage plug-in chosen at
start (cloud.plugins; `directory`, cloud.objects.store, by default). A configuration's
object item of source `local` names `bucket` + `object`; saving the configuration pins the
object's size and digests into the item (so its version changes exactly when the bytes do), and
serving it to a node adds a presigned URL of the pinned blob (cloud.objects.presign). Items of
source `http` are passed through as given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agent.contracts.kit.files import TooLarge
from agent.contracts.objects import LOCAL_SOURCE, OBJECT_PREFIX, ObjectItem, object_items
from agent.contracts.resources import Configuration
from cloud.errors import Forbidden, InUse, Invalid, NotFound
from cloud.objects import presign
from cloud.objects.store import ObjectInfo
from cloud.plugins import OBJECT_STORAGE, ObjectStore, ObjectUpload
from cloud.services.context import Caller, CloudContext
from cloud.services.tokens import require_admin
from cloud.store import configs as config_store

KIND = "object"
CONTENT_URL_TTL = 300
"""Seconds the URL an admin's download is redirected to stays valid (S3)."""
_BATCH = 1024 * 1024  # bytes handed to the writer thread at a time


@dataclass(frozen=True)
class Bucket:
    """A bucket and how many objects it holds."""

    name: str
    objects: int


def store_of(ctx: CloudContext) -> ObjectStore:
    """The object store of this cloud (made when the cloud starts, else at first use)."""
    if ctx.object_store is None:
        settings = ctx.settings
        ctx.object_store = OBJECT_STORAGE.make(settings.object_storage, settings)
    return ctx.object_store


def _lock(ctx: CloudContext, namespace: str) -> asyncio.Lock:
    # Uploads and sweeps of one namespace take turns: a sweep must not see a blob whose name is
    # not written yet (the grace period covers other processes).
    return ctx.object_locks.setdefault(namespace, asyncio.Lock())


async def upload(
    ctx: CloudContext, caller: Caller, bucket: str, name: str, chunks: AsyncIterator[bytes]
) -> ObjectInfo:
    """Store the bytes under `bucket/name` (replacing what the name held)."""
    require_admin(caller)
    store = store_of(ctx)
    limit = ctx.settings.objects.max_bytes
    try:
        upload: ObjectUpload = await asyncio.to_thread(store.upload, caller.namespace, bucket, name)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    async with _lock(ctx, caller.namespace):
        with upload:
            pending: list[bytes] = []
            size = total = 0
            try:
                async for chunk in chunks:
                    pending.append(chunk)
                    size += len(chunk)
                    total += len(chunk)
                    if total > limit:  # counted here: a plug-in store need not count
                        raise _too_large(limit)
                    if size >= _BATCH:
                        await asyncio.to_thread(upload.write, b"".join(pending))
                        pending, size = [], 0
                await asyncio.to_thread(upload.write, b"".join(pending))
            except TooLarge as exc:
                raise _too_large(limit) from exc
            info, replaced = await asyncio.to_thread(upload.finish)
        if replaced is not None:
            await _sweep(store, caller.namespace)
    return info


def _too_large(limit: int) -> Invalid:
    return Invalid(
        f"the object is larger than this cloud stores ({limit} bytes; "
        "baetyl-cloud serve --object-max-bytes)"
    )


async def info(ctx: CloudContext, caller: Caller, bucket: str, name: str) -> ObjectInfo:
    """One object's record; 404 when the name holds nothing."""
    found = await _info(store_of(ctx), caller.namespace, bucket, name)
    if found is None:
        raise NotFound(KIND, f"{bucket}/{name}", caller.namespace)
    return found


async def content(ctx: CloudContext, caller: Caller, bucket: str, name: str) -> Path | str:
    """The file holding an object's bytes, or (S3) a short-lived URL of them."""
    found = await info(ctx, caller, bucket, name)
    return store_of(ctx).blob_location(caller.namespace, found.sha256, CONTENT_URL_TTL)


async def buckets(ctx: CloudContext, caller: Caller) -> list[Bucket]:
    """The namespace's buckets with their object counts."""
    store = store_of(ctx)

    def count() -> list[Bucket]:
        return [
            Bucket(b, len(store.objects(caller.namespace, b)))
            for b in store.buckets(caller.namespace)
        ]

    return await asyncio.to_thread(count)


async def objects(ctx: CloudContext, caller: Caller, bucket: str) -> list[ObjectInfo]:
    """The objects of one bucket, by name."""
    try:
        return await asyncio.to_thread(store_of(ctx).objects, caller.namespace, bucket)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


async def delete(ctx: CloudContext, caller: Caller, bucket: str, name: str) -> None:
    """Remove an object that no configuration names (403 `ErrResourceHasBeenUsed` otherwise)."""
    require_admin(caller)
    namespace = caller.namespace
    store = store_of(ctx)
    users = [
        config
        for config, items in await _configs_items(namespace)
        if any(i.source == LOCAL_SOURCE and (i.bucket, i.object) == (bucket, name) for i in items)
    ]
    if users:
        raise InUse(
            f"The object ({bucket}/{name}) is used by configuration(s) {', '.join(sorted(users))}; "
            "remove it from them before deleting it"
        )
    async with _lock(ctx, namespace):
        try:
            removed = await asyncio.to_thread(store.delete, namespace, bucket, name)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        if removed is None:
            raise NotFound(KIND, f"{bucket}/{name}", namespace)
        await _sweep(store, namespace)


async def pin(ctx: CloudContext, namespace: str, data: dict[str, str]) -> dict[str, str]:
    """Configuration data with every `local` object item pinned to its object's current bytes.

    An item that names digests must name the object's (else 400: the object changed since);
    one that does not gets them. Items of source `http` are kept as given.
    """
    try:
        items = object_items(data)
    except ValueError as exc:
        raise Invalid(f"data: {exc}") from exc
    store = store_of(ctx)
    pinned = dict(data)
    for key, item in items.items():
        if item.source != LOCAL_SOURCE:
            continue
        where = f"data: object item {key!r}"
        found = await _info(store, namespace, item.bucket, item.object)
        if found is None:
            raise Invalid(
                f"{where}: object {item.bucket}/{item.object} is not in the cloud's object "
                f"store; upload it first (PUT /v1/objects/{item.bucket}/{item.object})"
            )
        for field, value in (("md5", found.md5), ("sha256", found.sha256)):
            given = getattr(item, field)
            if given and given != value:
                raise Invalid(
                    f"{where}: {field} {given} is not that of object {item.bucket}/{item.object} "
                    f"({value}); upload the object again or correct the digest"
                )
        fixed = item.model_copy(
            update={"md5": found.md5, "sha256": found.sha256, "size": found.size}
        )
        pinned[OBJECT_PREFIX + key] = fixed.to_text()
    return pinned


def served(ctx: CloudContext, namespace: str, config: Configuration) -> Configuration:
    """The configuration as a node gets it: every `local` item with a fresh presigned URL."""
    items = config.object_items()
    if not any(i.source == LOCAL_SOURCE for i in items.values()):
        return config
    store = store_of(ctx)
    base = ctx.settings.init_url
    ttl = int(ctx.settings.objects.url_ttl)
    key = ctx.secrets.derive_key(presign.HKDF_INFO)
    data = dict(config.data)
    for name, item in items.items():
        if item.source != LOCAL_SOURCE or not item.sha256:
            continue
        location = store.blob_location(namespace, item.sha256, ttl)
        if isinstance(location, str):
            # The storage's own URL (S3: signed by its keys, computed here without a request).
            url = location
        elif base is not None:
            url = presign.url(base, key, namespace, item.sha256, int(time.time()) + ttl)
        else:
            continue
        data[OBJECT_PREFIX + name] = item.model_copy(update={"url": url}).to_text()
    return config.model_copy(update={"data": data})


async def presigned_blob(
    ctx: CloudContext, namespace: str, sha256: str, expires: str, signature: str
) -> Path:
    """The blob a presigned URL names, after checking its signature and time (403 otherwise)."""
    key = ctx.secrets.derive_key(presign.HKDF_INFO)
    store = store_of(ctx)
    try:
        presign.check(key, namespace, sha256, expires, signature, now=time.time())
        path = store.blob_location(namespace, sha256, CONTENT_URL_TTL)
    except ValueError as exc:
        raise Forbidden(str(exc)) from exc
    if isinstance(path, str):
        raise NotFound(KIND, sha256, namespace)  # nodes download from the storage itself
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(KIND, sha256, namespace)
    return path


async def _info(store: ObjectStore, namespace: str, bucket: str, name: str) -> ObjectInfo | None:
    try:
        return await asyncio.to_thread(store.info, namespace, bucket, name)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


async def _configs_items(namespace: str) -> list[tuple[str, list[ObjectItem]]]:
    found: list[tuple[str, list[ObjectItem]]] = []
    for name, data in await config_store.all_data(namespace):
        try:
            found.append((name, list(object_items(data).values())))
        except ValueError:
            continue  # stored data was checked when saved; nothing to find in a broken one
    return found


async def _sweep(store: ObjectStore, namespace: str) -> None:
    pinned = {
        item.sha256
        for _name, items in await _configs_items(namespace)
        for item in items
        if item.source == LOCAL_SOURCE and item.sha256
    }
    await asyncio.to_thread(store.sweep, namespace, pinned)
