"""Install tokens: HMAC-SHA256 signed, expiring, bound to one node (DESIGN §10).

A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, with the claims
`{"ns", "n", "i", "e", "jti"}` (namespace, node, node instance, expiry in epoch seconds, random
id). The instance is the node's creation time in microseconds: a token issued before the node
was deleted names the old instance and is refused for a node re-created under the same name.
The claims are readable by whoever holds the token — they name nothing secret — but cannot be
changed without the key. Single use is not decided here: the cloud records consumed `jti`s
(cloud.store).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from agent.contracts import names

HKDF_INFO = b"baetyl install token"
"""The HKDF `info` that derives the token key from the cloud's `secret.key`."""
MAX_TOKEN_LENGTH = 1024
_JTI_BYTES = 16


class TokenError(ValueError):
    """A token that must be refused; the message says why, in words for the person holding it."""


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: which node it installs, until when, and its unique id."""

    namespace: str
    name: str
    expires: int
    jti: str
    instance: int = 0
    """The node instance (`instance_of` its record); 0 matches no node."""

    @property
    def nid(self) -> str:
        """The node id `<namespace>.<name>` (the CN its certificate gets)."""
        return names.make_nid(self.namespace, self.name)


def new_claims(
    namespace: str, name: str, *, now: float, ttl: float, instance: int = 0
) -> TokenClaims:
    """Claims for a fresh token valid `ttl` seconds from `now`, for node instance `instance`."""
    return TokenClaims(
        namespace=namespace,
        name=name,
        expires=int(now + ttl),
        jti=secrets.token_hex(_JTI_BYTES),
        instance=instance,
    )


def instance_of(created: datetime) -> int:
    """The instance number of a node created at `created`: its creation time in microseconds.

    A node deleted and created again under the same name gets another creation time, so tokens
    issued for the first one do not fit the second.
    """
    return int(created.timestamp() * 1_000_000)


def sign(key: bytes, claims: TokenClaims) -> str:
    """The token text for `claims`."""
    body = json.dumps(
        {
            "e": claims.expires,
            "i": claims.instance,
            "jti": claims.jti,
            "n": claims.name,
            "ns": claims.namespace,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    head = _encode(body)
    return f"{head}.{_encode(_mac(key, head))}"


def verify(key: bytes, token: str, *, now: float) -> TokenClaims:
    """The claims of an authentic, unexpired token; TokenError otherwise.

    The MAC is checked (in constant time) before the claims are even parsed, so a changed
    token is always reported as tampered with, never as some other problem.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenError("the install token is malformed (empty, too long or not ASCII)")
    head, dot, tail = token.partition(".")
    if not dot or not head or not tail:
        raise TokenError("the install token is malformed (expected two parts joined by '.')")
    try:
        given = _decode(tail)
    except ValueError:
        raise TokenError("the install token is malformed (bad base64url signature)") from None
    if not hmac.compare_digest(given, _mac(key, head)):
        raise TokenError(
            "the install token was not issued by this cloud or was altered "
            "(its signature does not match)"
        )
    claims = _parse(head)
    if claims.expires <= now:
        raise TokenError(
            f"the install token expired {_ago(now - claims.expires)} ago; "
            f"get a new install command (GET /v1/nodes/{claims.name}/init)"
        )
    return claims


def _parse(head: str) -> TokenClaims:
    try:
        data = json.loads(_decode(head))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("the install token is malformed (its claims are not JSON)") from None
    if not isinstance(data, dict):
        raise TokenError("the install token is malformed (its claims are not an object)")
    namespace, name, expires, jti = (data.get(k) for k in ("ns", "n", "e", "jti"))
    instance = data.get("i", 0)
    if (
        not isinstance(namespace, str)
        or not isinstance(name, str)
        or not isinstance(jti, str)
        or not _is_int(expires)
        or not _is_int(instance)
        or not 0 < len(jti) <= 64
    ):
        raise TokenError("the install token is malformed (missing or mistyped claims)")
    try:
        names.check_namespace(namespace)
        names.check_name(name, kind="node")
    except names.InvalidName as exc:
        raise TokenError(f"the install token is malformed ({exc})") from None
    return TokenClaims(namespace=namespace, name=name, expires=expires, jti=jti, instance=instance)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _mac(key: bytes, head: str) -> bytes:
    return hmac.new(key, head.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"
