"""`/v1/yaml`: Baetyl's routes for a multi-document YAML file, as multipart field `file`.

`POST` creates every resource of the file (409 if one exists), `PUT` creates or replaces them,
`POST /v1/yaml/delete` deletes them; all or nothing (cloud.api.yaml_apply). The answer is
Baetyl's `{"total", "items"}` (`{"success": true}` for a delete) with `results` beside it: what
happened to each resource, for scripts and `baetylctl apply -f`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from agent.contracts.wire import WireModel
from cloud.api import yaml_apply, yaml_upload
from cloud.api.auth import caller_of
from cloud.api.http import reply
from cloud.api.keys import CONTEXT
from cloud.api.routing import RouteTable, file_field

TAGS = ("yaml",)
routes = RouteTable(prefix="/v1", tags=TAGS)


class YamlOutcome(WireModel):
    """What happened to one resource of the file, and which document named it."""

    kind: str
    name: str
    document: int
    result: str


class YamlApplied(WireModel):
    """The views of the resources created or replaced, in the order they were written."""

    total: int
    items: list[dict[str, Any]] = Field(default_factory=list)
    results: list[YamlOutcome] = Field(default_factory=list)


class YamlDeleted(WireModel):
    """A file's resources deleted (those already absent are skipped)."""

    success: bool = True
    results: list[YamlOutcome] = Field(default_factory=list)


FILE = file_field(yaml_upload.FIELD)


@routes.post(
    "/yaml",
    "Create the resources of a multi-document YAML file (multipart field 'file')",
    response=YamlApplied,
    upload=FILE,
)
async def create_from_file(request: web.Request) -> web.Response:
    """Create every resource of the file; nothing is created when one already exists."""
    return reply(await _apply(request, create_only=True))


@routes.put(
    "/yaml",
    "Create or replace the resources of a multi-document YAML file (multipart field 'file')",
    response=YamlApplied,
    upload=FILE,
)
async def apply_file(request: web.Request) -> web.Response:
    """Create what is absent and replace what exists, as `kubectl apply` does."""
    return reply(await _apply(request, create_only=False))


@routes.post(
    "/yaml/delete",
    "Delete the resources of a multi-document YAML file (multipart field 'file')",
    response=YamlDeleted,
    upload=FILE,
)
async def delete_file(request: web.Request) -> web.Response:
    """Delete every resource the file names, in the reverse order of their writes."""
    caller = caller_of(request)
    documents = await yaml_upload.read_documents(request)
    read = yaml_apply.read_for_delete(caller, documents)
    outcomes = await yaml_apply.delete(request.app[CONTEXT], caller, read)
    return reply(YamlDeleted(results=[_outcome(o) for o in outcomes]))


async def _apply(request: web.Request, *, create_only: bool) -> YamlApplied:
    caller = caller_of(request)
    documents = await yaml_upload.read_documents(request)
    read = await yaml_apply.read_for_apply(caller, documents)
    done = await yaml_apply.apply(request.app[CONTEXT], caller, read, create_only=create_only)
    items = [view.model_dump(mode="json", by_alias=True, exclude_none=True) for view in done.items]
    return YamlApplied(total=len(items), items=items, results=[_outcome(o) for o in done.outcomes])


def _outcome(outcome: yaml_apply.Outcome) -> YamlOutcome:
    return YamlOutcome(
        kind=outcome.kind, name=outcome.name, document=outcome.document, result=outcome.result
    )
