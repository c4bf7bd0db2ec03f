"""Presigned download URLs: a node fetches an object blob with no token, until the URL expires.

The cloud serves each node its configurations with a `url` in every object item of its own store
(`resources/get`), as Baetyl does with its object-storage plugin. The URL names the namespace, the
blob's SHA-256 and an expiry, signed with HMAC-SHA256 under a key derived from `secret.key`:
anyone holding the URL may download that blob until then, nothing else; changing any part of it
breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import quote

HKDF_INFO: Final = b"baetyl object url"
"""The HKDF `info` that derives the URL key from the cloud's `secret.key`."""
ROUTE: Final = "/v1/objects-data"
"""The download route: `ROUTE/{namespace}/{sha256}?expires=...&signature=...`."""


class PresignError(ValueError):
    """A download URL to refuse; the message says why."""


def signature(key: bytes, namespace: str, sha256: str, expires: int) -> str:
    """The hex HMAC of one download."""
    text = f"{namespace}\n{sha256}\n{expires}".encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def url(base: str, key: bytes, namespace: str, sha256: str, expires: int) -> str:
    """The download URL of a blob, valid until `expires` (epoch seconds)."""
    sig = signature(key, namespace, sha256, expires)
    return f"{base}{ROUTE}/{quote(namespace)}/{sha256}?expires={expires}&signature={sig}"


def check(key: bytes, namespace: str, sha256: str, expires: str, sig: str, *, now: float) -> None:
    """Refuse (PresignError) a URL whose signature does not match or whose time is over."""
    try:
        deadline = int(expires)
    except ValueError as exc:
        raise PresignError("expires: not a number of seconds") from exc
    wanted = signature(key, namespace, sha256, deadline)
    if not hmac.compare_digest(wanted, sig):
        raise PresignError("the download URL's signature does not match it")
    if now >= deadline:
        raise PresignError(f"the download URL expired {int(now - deadline)} s ago")
