"""Content versions: opaque strings that change exactly when a resource's content changes (§7).

A version is a digest of the canonical JSON of the content, so the same content always gets the
same version on every replica, and an update that changes nothing keeps its version.
"""

from __future__ import annotations

import hashlib
import json


def content_version(value: object) -> str:
    """The version of `value`: 16 hex characters of the SHA-256 of its canonical JSON."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
