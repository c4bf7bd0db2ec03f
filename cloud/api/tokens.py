"""`/v1/tokens`: create, list and revoke API tokens of the caller's namespace."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from agent.contracts.wire import WireModel
from cloud.api.auth import caller_of
from cloud.api.http import path_param, read_body, reply
from cloud.api.routing import RouteTable
from cloud.errors import Invalid
from cloud.services import tokens
from cloud.services.tokens import TokenInfo

routes = RouteTable(prefix="/v1", tags=("tokens",))
_TOKEN_ID = re.compile(r"^[0-9]{1,18}$")  # fits a 64-bit integer column


class TokenRequest(WireModel):
    """A token to create in the caller's namespace."""

    role: Literal["admin", "read"] = "read"
    description: Annotated[str, StringConstraints(max_length=256)] = ""


class TokenView(WireModel):
    """A token as listed; its secret is never shown again after creation."""

    id: int
    namespace: str
    role: Literal["admin", "read"]
    prefix: str
    description: str
    create_time: datetime


class CreatedToken(TokenView):
    """A new token, with its secret (shown this once)."""

    token: str


class TokenList(WireModel):
    """The caller's namespace tokens."""

    total: int
    items: list[TokenView] = Field(default_factory=list)


def _view(info: TokenInfo) -> TokenView:
    return TokenView(
        id=info.id,
        namespace=info.namespace,
        role=info.role,
        prefix=info.prefix,
        description=info.description,
        create_time=info.create_time,
    )


@routes.post("/tokens", "Create a token", body=TokenRequest, response=CreatedToken)
async def create_token(request: web.Request) -> web.Response:
    """Create a token in the caller's namespace (admin only)."""
    caller = caller_of(request)
    body = await read_body(request, TokenRequest)
    info, plain = await tokens.issue(caller.namespace, body.role, description=body.description)
    return reply(CreatedToken(**_view(info).model_dump(), token=plain))


@routes.get("/tokens", "List tokens", response=TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    """The caller's namespace tokens, newest first."""
    items = [_view(info) for info in await tokens.listing(caller_of(request))]
    return reply(TokenList(total=len(items), items=items))


@routes.delete("/tokens/{id}", "Revoke a token")
async def delete_token(request: web.Request) -> web.Response:
    """Revoke one token of the caller's namespace."""
    raw = path_param(request, "id")
    if not _TOKEN_ID.match(raw):
        raise Invalid(f"token id must be a number of at most 18 digits, not {raw[:40]!r}")
    await tokens.revoke(caller_of(request), int(raw))
    return reply(None)
