"""Shadow document rules (DESIGN §5): merge, delta, versioned updates and their limits.

Pure functions over plain JSON values, shared by the cloud (the authoritative copy) and the agent
(its local copy), so both sides compute exactly the same document and delta. Inputs are never
mutated; every accepted update returns a new document that shares its unchanged parts with the
old one, so treat documents as immutable values (serialize or deep-copy before editing one).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any, Final

JSONObject = dict[str, Any]

DESIRED: Final = "desired"
REPORTED: Final = "reported"
DELTA: Final = "delta"
WRITABLE_SECTIONS: Final = (DESIRED, REPORTED)


@dataclass(frozen=True)
class ShadowLimits:
    """Bounds on what one shadow section may hold, so one node cannot bloat the store or the link.

    Attributes:
        max_section_bytes: size of a section serialized as compact UTF-8 JSON.
        max_depth: nesting of objects and arrays inside a section; ``{"a": 1}`` has depth 1.
        max_key_length: characters in any object key, at any level.
    """

    max_section_bytes: int = 128 * 1024
    max_depth: int = 8
    max_key_length: int = 128

    @property
    def node_payload_bytes(self) -> int:
        """The largest MQTT payload a node may publish: an update of two full sections with room
        for its envelope (320 KiB by default). The managed broker refuses bigger ones from nodes
        (decision #98), the cloud drops them, and the agent cuts a command answer to fit."""
        return 2 * self.max_section_bytes + 64 * 1024


PRESENCE_MAX_BYTES: Final = 1024
"""The largest `presence` payload; the only message a node may retain (DESIGN §4)."""

DEFAULT_LIMITS: Final = ShadowLimits()


class ShadowError(Exception):
    """An update the shadow rules refuse; `code` is the HTTP-style status sent back on `…/rejected`.

    Codes: 400 bad shape or depth, 403 forbidden section, 409 version conflict, 413 too large.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def new_document(now: float) -> JSONObject:
    """An empty shadow at version 1, as a node gets when it is created."""
    return {
        "state": {DESIRED: {}, REPORTED: {}, DELTA: {}},
        "metadata": {DESIRED: {}, REPORTED: {}},
        "version": 1,
        "timestamp": now,
    }


def merge(section: JSONObject, patch: JSONObject) -> JSONObject:
    """Merge `patch` into `section`: objects key by key, arrays and scalars replace, null deletes.

    A patch object landing on a key that holds no object starts from an empty object, so nulls
    inside it never reach the result and merging the same patch twice equals merging it once.
    """
    result = dict(section)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = merge(current if isinstance(current, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def delta(desired: JSONObject, reported: JSONObject) -> JSONObject:
    """What `reported` still lacks of `desired`: desired values that are absent or different.

    Where both sides hold objects the comparison recurses and keeps only non-empty results; keys
    that exist only in `reported` never appear.
    """
    result: JSONObject = {}
    for key, want in desired.items():
        if key not in reported:
            result[key] = want  # shared, not copied: documents are immutable values
            continue
        have = reported[key]
        if isinstance(want, dict) and isinstance(have, dict):
            sub = delta(want, have)
            if sub:
                result[key] = sub
        elif not json_equal(want, have):
            result[key] = want
    return result


def apply_update(
    doc: JSONObject,
    section: str,
    patch: JSONObject | None,
    *,
    version: int | None,
    now: float,
    limits: ShadowLimits = DEFAULT_LIMITS,
) -> JSONObject:
    """Apply one update to a section and return the new document, or raise ShadowError.

    `patch=None` empties the section. `version`, when given, must equal the document's current
    version (optimistic concurrency, 409 otherwise). On success the version rises by exactly one,
    the written leaves get `{"timestamp": now}` in the metadata and the delta is recomputed. A
    refused update leaves `doc` untouched (it is never mutated).
    """
    if section == DELTA:
        raise ShadowError(403, "the delta section is computed by the shadow and cannot be written")
    if section not in WRITABLE_SECTIONS:
        raise ShadowError(400, f"unknown shadow section {section!r}; use 'desired' or 'reported'")
    if patch is not None and not isinstance(patch, dict):
        raise ShadowError(400, f"the {section} section must be an object or null")
    current_version = doc["version"]
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ShadowError(400, "version must be an integer")
    if version is not None and version != current_version:
        raise ShadowError(
            409,
            f"version conflict: the update names version {version}, current is {current_version}",
        )
    if patch is not None:
        _check_json(patch, limits, path=section, depth=1)

    state = doc["state"]
    new_section, new_meta = updated_section(
        section, state[section], doc["metadata"][section], patch, now=now, limits=limits
    )
    new_state = {**state, section: new_section}
    new_state[DELTA] = delta(new_state[DESIRED], new_state[REPORTED])
    new_metadata = {**doc["metadata"], section: new_meta}
    return {
        "state": new_state,
        "metadata": new_metadata,
        "version": current_version + 1,
        "timestamp": now,
    }


def updated_section(
    name: str,
    section: JSONObject,
    meta: JSONObject,
    patch: JSONObject | None,
    *,
    now: float,
    limits: ShadowLimits = DEFAULT_LIMITS,
) -> tuple[JSONObject, JSONObject]:
    """One section and its metadata after a checked `patch` (None empties it), or 413.

    `apply_update` is this plus the checks and the version; the cloud's fleet-wide desired writes
    call it directly on the desired half of a shadow, which is all they read.
    """
    if patch is None:
        return {}, {}
    new_section = merge(section, patch)
    size = len(_compact(new_section))
    if size > limits.max_section_bytes:
        raise ShadowError(
            413,
            f"the {name} section would be {size} bytes, over the limit of "
            f"{limits.max_section_bytes} bytes",
        )
    return new_section, _merge_metadata(new_section, section, meta, patch, now)


def _merge_metadata(
    new_section: JSONObject,
    old_section: JSONObject,
    old_meta: JSONObject,
    patch: JSONObject,
    now: float,
) -> JSONObject:
    """Metadata mirroring `new_section`: leaves the patch wrote get `now`, others keep their time.

    A leaf is any non-object value or an empty object; its metadata is `{"timestamp": t}`.
    """
    stamp = {"timestamp": now}
    meta: JSONObject = {}
    for key, value in new_section.items():
        written = patch.get(key)
        if written is None:  # untouched by this patch: keep what was recorded
            kept = old_meta.get(key)
            meta[key] = kept if kept is not None else dict(stamp)
        elif isinstance(written, dict) and isinstance(value, dict) and value:
            old_value = old_section.get(key)
            if isinstance(old_value, dict) and old_value:
                meta[key] = _merge_metadata(value, old_value, old_meta.get(key, {}), written, now)
            else:  # the key held a leaf before: none of its old metadata applies
                meta[key] = _merge_metadata(value, {}, {}, written, now)
        else:
            meta[key] = dict(stamp)
    return meta


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _check_json(value: object, limits: ShadowLimits, *, path: str, depth: int) -> None:
    """Refuse anything that is not plain JSON within the depth and key-length limits (400)."""
    if depth > limits.max_depth:
        raise ShadowError(400, f"{path}: nesting deeper than {limits.max_depth} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ShadowError(400, f"{path}: object keys must be strings")
            if "\x00" in key:
                raise ShadowError(400, f"{path}: a key contains a NUL character")
            if len(key) > limits.max_key_length:
                raise ShadowError(
                    400,
                    f"{path}: key {key[:32]!r}… is longer than {limits.max_key_length} characters",
                )
            if isinstance(item, dict | list):
                _check_json(item, limits, path=f"{path}.{key}", depth=depth + 1)
            else:
                _check_scalar(item, path=f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                _check_json(item, limits, path=f"{path}[{index}]", depth=depth + 1)
            else:
                _check_scalar(item, path=f"{path}[{index}]")


def _check_scalar(value: object, *, path: str) -> None:
    # Stored documents must be readable by every store and peer: integers that fit 64 bits
    # (orjson and PostgreSQL's jsonb consumers), text without NUL (refused by PostgreSQL).
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return
        raise ShadowError(400, f"{path}: integer does not fit in 64 bits")
    if isinstance(value, str):
        if "\x00" not in value:
            return
        raise ShadowError(400, f"{path}: text contains a NUL character")
    if isinstance(value, float):
        if math.isfinite(value):
            return
        raise ShadowError(400, f"{path}: {value} is not a JSON number")
    raise ShadowError(400, f"{path}: {type(value).__name__} is not a JSON value")


def _compact(value: JSONObject) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_equal(a: object, b: object) -> bool:
    """Equality as JSON sees it: `true` is not `1`, although Python says True == 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return a == b
