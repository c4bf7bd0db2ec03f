"""API tokens: shown once in plain text, stored as SHA-256, bound to a namespace and a role."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agent.contracts import names
from cloud.errors import Forbidden, Invalid, NotFound, Unauthenticated
from cloud.services.context import Caller, Role
from cloud.store import tokens as store
from cloud.store.models import Token

if TYPE_CHECKING:
    from cloud.plugins import Authenticator
    from cloud.settings import CloudSettings

TOKEN_PREFIX = "bt_"  # noqa: S105 - the marker every token starts with
ROLES: tuple[Role, ...] = ("admin", "read")
MAX_TOKEN_LENGTH = 256
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret, only the first characters to recognise it."""

    id: int
    namespace: str
    role: Role
    prefix: str
    description: str
    create_time: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: Token) -> TokenInfo:
    role: Role = "admin" if row.role == "admin" else "read"
    return TokenInfo(row.id, row.namespace, role, row.prefix, row.description, row.create_time)


async def issue(namespace: str, role: str, *, description: str = "") -> tuple[TokenInfo, str]:
    """Create a token for `namespace` (created if missing); returns its info and its plain text."""
    try:
        names.check_namespace(namespace)
    except names.InvalidName as exc:
        raise Invalid(str(exc)) from exc
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(description) > 256:
        raise Invalid("description is longer than 256 characters")
    await store.ensure_namespace(namespace)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await store.add_token(
        namespace=namespace,
        role=role,
        digest=_digest(plain),
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        description=description,
    )
    return _info(row), plain


async def authenticate(authorization: str | None) -> Caller:
    """The caller of an `Authorization: Bearer <token>` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_CHARS.match(token):
        # Our tokens are short URL-safe ASCII; anything else (a latin-1 byte aiohttp kept as a
        # surrogate, a control character) cannot be one and must not reach the digest.
        raise Unauthenticated("the token is not valid")
    row = await store.find_token(_digest(token))
    # The digest lookup already matched; compare again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.digest, _digest(token)):
        raise Unauthenticated("the token is not valid")
    info = _info(row)
    return Caller(namespace=info.namespace, role=info.role, token_id=info.id)


class TokenAuth:
    """Authentication by the bearer tokens above, each bound to a namespace and a role."""

    async def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller of the request's `Authorization: Bearer <token>`, or Unauthenticated."""
        return await authenticate(headers.get("Authorization"))


def token_auth(settings: CloudSettings) -> Authenticator:
    """The built-in authentication plug-in `token` (setup.cfg; the tokens live in the store,
    so there is nothing to configure)."""
    del settings
    return TokenAuth()


def require_admin(caller: Caller) -> None:
    """Forbidden unless the caller's token has the admin role."""
    if caller.role != "admin":
        raise Forbidden(
            "this token has the read role; writing, and reading credentials, needs an admin token"
        )


async def listing(caller: Caller) -> list[TokenInfo]:
    """The tokens of the caller's namespace."""
    return [_info(row) for row in await store.list_tokens(caller.namespace)]


async def revoke(caller: Caller, token_id: int) -> None:
    """Delete a token of the caller's namespace."""
    require_admin(caller)
    if not await store.delete_token(caller.namespace, token_id):
        raise NotFound("token", str(token_id), caller.namespace)
