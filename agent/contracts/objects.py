"""Object items of a configuration: files that are downloaded, not carried in the config itself.

Baetyl keeps a config item of type `object` (or `function`) in the configuration's data under the
key `_object_<key>`, as JSON; we do the same, so a configuration stays `{key: text}` on the wire
and in the store. The item names where the bytes are — the cloud's own object store (`source:
local`, `bucket` + `object`) or any URL (`source: http`) — and how to check and unpack them. The
cloud fills `md5`/`sha256`/`size` from its store when the configuration is saved (so the
configuration's version pins the bytes) and a presigned, expiring `url` when it serves the
configuration to a node; the node downloads, verifies and unpacks (agent.core.objects).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from agent.contracts.wire import WireModel, describe_errors

OBJECT_PREFIX = "_object_"
"""The data-key prefix of object items (Baetyl's)."""
LOCAL_SOURCE = "local"
"""The cloud's own object store (DATA_DIR/objects)."""
HTTP_SOURCE = "http"
"""Any http(s) URL, downloaded by the node as given."""
OBJECT_SOURCES = (LOCAL_SOURCE, HTTP_SOURCE)
UNPACK_KINDS = ("", "zip", "tar", "tgz", "tar.gz")
ITEM_TYPES = ("object", "function")
MAX_OBJECT_NAME = 512

_HEX_MD5 = re.compile(r"^[0-9a-f]{32}$")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
BUCKET_RE = re.compile(r"^[a-z0-9][-a-z0-9.]{1,61}[a-z0-9]$")
_SEGMENT_RE = re.compile(r"^[-._A-Za-z0-9]+$")


def check_bucket(bucket: str) -> str:
    """A bucket name: 3-63 lower-case letters, digits, '-' and '.' (as S3 names them)."""
    if not BUCKET_RE.match(bucket):
        raise ValueError(
            f"bucket {bucket!r} must be 3-63 characters: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return bucket


def check_object_name(name: str) -> str:
    """An object name: '/'-separated segments of letters, digits, '-', '_' and '.', no '..'."""
    segments = name.split("/")
    if (
        not name
        or len(name) > MAX_OBJECT_NAME
        or any(not _SEGMENT_RE.match(s) or s in {".", ".."} for s in segments)
    ):
        raise ValueError(
            f"object name {name!r} must be at most {MAX_OBJECT_NAME} characters of '/'-separated "
            "segments made of letters, digits, '-', '_' and '.' (no empty, '.' or '..' segment)"
        )
    return name


def _md5(text: str) -> str:
    if text and not _HEX_MD5.match(text):
        raise ValueError(f"md5 {text!r} must be 32 lower-case hex digits")
    return text


def _sha256(text: str) -> str:
    if text and not _HEX_SHA256.match(text):
        raise ValueError(f"sha256 {text!r} must be 64 lower-case hex digits")
    return text


STORE_ALIASES = frozenset({"minio", "awss3", "s3", "baidubos", "bos"})
"""Baetyl's object-storage plugin names: this cloud has one store, whatever it is called."""


def _store_alias(value: object) -> object:
    return LOCAL_SOURCE if isinstance(value, str) and value.lower() in STORE_ALIASES else value


class ObjectItem(WireModel):
    """One downloaded file of a configuration (Baetyl's `object` and `function` item values).

    `unpack` empty: the file appears in the volume under the item's key. `zip`, `tar`, `tgz`
    (`tar.gz`): the archive's content appears at the volume's root, as in Baetyl.
    """

    type: Literal["object", "function"] = "object"
    source: Annotated[str, BeforeValidator(_store_alias)] = ""
    """`local` or `http`; Baetyl's names of the cloud's storage (`minio`, `awss3`, …) mean this
    cloud's one object store, and an item without a source is `http` with a `url`, else `local`."""
    url: str = ""
    bucket: str = ""
    object: str = ""
    md5: Annotated[str, AfterValidator(_md5)] = ""
    sha256: Annotated[str, AfterValidator(_sha256)] = ""
    size: int | None = Field(default=None, ge=0)
    unpack: Literal["", "zip", "tar", "tgz", "tar.gz"] = ""
    # Baetyl's fields of `function` items (the function's identity in a function source).
    function: str = ""
    version: str = ""
    runtime: str = ""
    handler: str = ""
    # Baetyl's fields for an object in another account's storage; only the default is served
    # (`current`, Baetyl's name of it, `self` or nothing).
    account: str = ""
    endpoint: str = ""
    address_format: str = ""
    platform: Annotated[
        str, StringConstraints(max_length=64, pattern=r"^([a-z0-9]+(-[a-z0-9]+)*)?$")
    ] = ""
    """The platform a program configuration's item is for (`linux-amd64`); Baetyl writes it
    beside the item's key, which is what chooses the item (Configuration.for_platform)."""

    @model_validator(mode="after")
    def _located(self) -> ObjectItem:
        if not self.source:
            self.source = HTTP_SOURCE if self.url else LOCAL_SOURCE
        if self.source not in OBJECT_SOURCES:
            raise ValueError(
                f"source {self.source!r} is not an object source of this cloud: use "
                f"{LOCAL_SOURCE!r} (the cloud's object store) or {HTTP_SOURCE!r} (a URL)"
            )
        if self.account not in ("", "self", "current") or self.endpoint:
            raise ValueError(
                "account/endpoint: objects in another storage account are not supported; "
                "upload the object to the cloud (source 'local') or give its URL (source 'http')"
            )
        if self.source == HTTP_SOURCE:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError("url: an object of source 'http' needs an http(s) URL")
        else:
            check_bucket(self.bucket)
            check_object_name(self.object)
        return self

    def to_text(self) -> str:
        """The item as stored under its `_object_` key: compact JSON of the fields given."""
        return self.model_dump_json(by_alias=True, exclude_defaults=True)

    @property
    def archive(self) -> str:
        """The archive kind to unpack (`zip`, `tar`, `tgz`), or '' for a plain file."""
        return "tgz" if self.unpack == "tar.gz" else self.unpack

    @property
    def digest_key(self) -> str | None:
        """The strongest digest given, as `sha256-<hex>` or `md5-<hex>`; None when none is."""
        if self.sha256:
            return f"sha256-{self.sha256}"
        if self.md5:
            return f"md5-{self.md5}"
        return None


def is_object_key(key: str) -> bool:
    """Whether a configuration data key holds an object item."""
    return key.startswith(OBJECT_PREFIX)


def object_items(data: dict[str, str]) -> dict[str, ObjectItem]:
    """The object items of configuration data, by item key (without the prefix).

    Raises ValueError naming the item when one is not a valid object item.
    """
    items: dict[str, ObjectItem] = {}
    for key, text in data.items():
        if not is_object_key(key):
            continue
        name = key.removeprefix(OBJECT_PREFIX)
        if not name:
            raise ValueError(f"data key {key!r}: an object item needs a name after the prefix")
        try:
            items[name] = ObjectItem.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"object item {name!r}: " + "; ".join(describe_errors(exc))) from exc
    return items
