"""`/v1/objects`, `/v2/objects` and the presigned download route: the cloud's object store.

An admin uploads a file with `PUT /v1/objects/{bucket}/{object}` (the raw bytes as the body) and
names it in a configuration's object item (`source: local`, `bucket`, `object`); nodes download it
through the presigned URL the cloud gives them (`/v1/objects-data/...`, no token). The `/v2`
listing routes keep Baetyl's paths (`/v2/objects/{source}/buckets[/{bucket}/objects]`).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from agent.contracts.objects import LOCAL_SOURCE
from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import BYTES, RouteTable
from cloud.errors import NotFound
from cloud.objects import presign
from cloud.objects.store import ObjectInfo
from cloud.services import objects

routes = RouteTable(tags=("objects",))
_CHUNK = 64 * 1024
_OBJECT = "/v1/objects/{bucket}/{object:.+}"


class ObjectView(WireModel):
    """One stored object: its name, size and digests."""

    bucket: str
    object: str
    size: int
    md5: str
    sha256: str
    update_time: datetime


class ObjectList(WireModel):
    """The objects of a bucket, by name."""

    objects: list[ObjectView]


class BucketView(WireModel):
    """A bucket and how many objects it holds."""

    name: str
    objects: int


class BucketList(WireModel):
    """The namespace's buckets."""

    buckets: list[BucketView]


class SourceList(WireModel):
    """Baetyl's object sources: here, the cloud's own store."""

    sources: list[str]


def _view(info: ObjectInfo) -> ObjectView:
    return ObjectView(
        bucket=info.bucket,
        object=info.name,
        size=info.size,
        md5=info.md5,
        sha256=info.sha256,
        update_time=info.update_time,
    )


def _source(request: web.Request) -> None:
    source = path_param(request, "source")
    if source != LOCAL_SOURCE:
        raise NotFound("object source", source)


@routes.put(_OBJECT, "Upload an object (the body is its bytes)", response=ObjectView, upload=BYTES)
async def put_object(request: web.Request) -> web.Response:
    """Store the request body under `bucket/object`, replacing what the name held."""
    info = await objects.upload(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "bucket"),
        path_param(request, "object"),
        request.content.iter_chunked(_CHUNK),
    )
    return reply(_view(info))


@routes.get(_OBJECT, "Download an object")
async def get_object(request: web.Request) -> web.StreamResponse:
    """The object's bytes."""
    found = await objects.content(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "bucket"),
        path_param(request, "object"),
    )
    if isinstance(found, str):  # kept in S3: the storage serves it
        raise web.HTTPTemporaryRedirect(found)
    return web.FileResponse(found, headers={"Content-Type": "application/octet-stream"})


@routes.delete(_OBJECT, "Delete an object no configuration names")
async def delete_object(request: web.Request) -> web.Response:
    """Remove the object (403 `ErrResourceHasBeenUsed` while a configuration names it)."""
    await objects.delete(
        request.app[CONTEXT],
        caller_of(request),
        path_param(request, "bucket"),
        path_param(request, "object"),
    )
    return reply(None)


@routes.get(
    "/v1/objects", "List the object sources (Baetyl's deprecated route)", response=SourceList
)
@routes.get("/v2/objects", "List the object sources", response=SourceList)
async def get_sources(request: web.Request) -> web.Response:
    """`{"sources": ["local"]}`: the cloud's own store (items may also use `source: http`)."""
    del request
    return reply(SourceList(sources=[LOCAL_SOURCE]))


@routes.get("/v2/objects/{source}/buckets", "List the buckets", response=BucketList)
async def get_buckets(request: web.Request) -> web.Response:
    """The namespace's buckets that hold objects."""
    _source(request)
    found = await objects.buckets(request.app[CONTEXT], caller_of(request))
    return reply(BucketList(buckets=[BucketView(name=b.name, objects=b.objects) for b in found]))


@routes.get(
    "/v2/objects/{source}/buckets/{bucket}/objects", "List a bucket's objects", response=ObjectList
)
async def get_objects(request: web.Request) -> web.Response:
    """The objects of one bucket."""
    _source(request)
    found = await objects.objects(
        request.app[CONTEXT], caller_of(request), path_param(request, "bucket")
    )
    return reply(ObjectList(objects=[_view(info) for info in found]))


@routes.get(
    presign.ROUTE + "/{namespace}/{sha256}",
    "Download an object blob through a presigned URL (what nodes are given)",
    access="anonymous",
)
async def get_presigned(request: web.Request) -> web.StreamResponse:
    """The blob, if the URL's signature matches and it has not expired (403 otherwise)."""
    path = await objects.presigned_blob(
        request.app[CONTEXT],
        path_param(request, "namespace"),
        path_param(request, "sha256"),
        request.query.get("expires", ""),
        request.query.get("signature", ""),
    )
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
