"""Validation of namespaces, resource names, node ids (nid) and Kubernetes labels (DESIGN §3).

Everything that crosses a boundary with a name in it (a topic, a REST path, a certificate CN) is
checked here, so that a bad name is refused with one clear message wherever it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAMESPACE_MAX = 63
NAME_MAX = 63
APP_NAME_MAX = 55  # so that "<app>-nodeport" still fits a 63-character Kubernetes name
LABEL_NAME_MAX = 63
LABEL_VALUE_MAX = 63
LABEL_PREFIX_MAX = 253
LABELS_MAX = 64  # labels a user gives a resource; selectors need a few, not thousands

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_RE = re.compile(r"^[a-z0-9][-a-z0-9.]{0,61}[a-z0-9]$")
_SERVICE_NAME_RE = re.compile(r"^[a-z0-9][-a-z0-9]{0,61}[a-z0-9]$")
_LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class InvalidName(ValueError):
    """A name, nid or label that breaks the rules of DESIGN §3."""


def check_namespace(ns: str) -> str:
    """Return `ns` if it is a valid tenant namespace, else raise InvalidName."""
    if not isinstance(ns, str) or not ns:
        raise InvalidName("namespace must be a non-empty string")
    if len(ns) > NAMESPACE_MAX:
        raise InvalidName(f"namespace {ns!r} is longer than {NAMESPACE_MAX} characters")
    if not _NAMESPACE_RE.match(ns):
        raise InvalidName(
            f"namespace {ns!r} must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return ns


def check_name(name: str, *, kind: str = "resource", max_length: int = NAME_MAX) -> str:
    """Return `name` if it is a valid resource name (node, app, config, secret, ...)."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{kind} name must be a non-empty string")
    if len(name) > max_length:
        raise InvalidName(f"{kind} name {name!r} is longer than {max_length} characters")
    if not _NAME_RE.match(name):
        raise InvalidName(
            f"{kind} name {name!r} must be 2-{max_length} characters of lower-case letters, "
            "digits, '-' and '.', starting and ending with a letter or digit"
        )
    return name


def check_app_name(name: str) -> str:
    """Return `name` if it is a valid application name (a resource name of ≤ 55 characters)."""
    return check_name(name, kind="application", max_length=APP_NAME_MAX)


def check_service_name(name: str) -> str:
    """Return `name` if it is a valid service name (no dots: it names processes and containers)."""
    if not isinstance(name, str) or not _SERVICE_NAME_RE.match(name):
        raise InvalidName(
            f"service name {name!r} must be 2-63 characters of lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return name


def make_nid(namespace: str, node: str) -> str:
    """Build the node id `{ns}.{node}` used as certificate CN, MQTT username and topic segment."""
    return f"{check_namespace(namespace)}.{check_name(node, kind='node')}"


def split_nid(nid: str) -> tuple[str, str]:
    """Split a nid at its first dot into (namespace, node), validating both parts."""
    if not isinstance(nid, str) or "." not in nid:
        raise InvalidName(f"node id {nid!r} must have the form '<namespace>.<node>'")
    namespace, node = nid.split(".", 1)
    try:
        return check_namespace(namespace), check_name(node, kind="node")
    except InvalidName as exc:
        raise InvalidName(f"node id {nid!r}: {exc}") from exc


def check_nid(nid: str) -> str:
    """Return `nid` if it is a valid node id."""
    split_nid(nid)
    return nid


def check_label_key(key: str) -> str:
    """Return `key` if it is a valid Kubernetes label key (`[prefix/]name`)."""
    if not isinstance(key, str) or not key:
        raise InvalidName("label key must be a non-empty string")
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            raise InvalidName(f"label key {key!r} has an empty prefix before '/'")
        if len(prefix) > LABEL_PREFIX_MAX or not all(
            _DNS_LABEL_RE.match(part) and len(part) <= 63 for part in prefix.split(".")
        ):
            raise InvalidName(
                f"label key prefix {prefix!r} must be a DNS subdomain "
                f"(lower-case, dot-separated, at most {LABEL_PREFIX_MAX} characters)"
            )
    if len(name) > LABEL_NAME_MAX or not _LABEL_NAME_RE.match(name):
        raise InvalidName(
            f"label key {key!r}: the name part must be 1-{LABEL_NAME_MAX} characters of "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    return key


def check_label_value(value: str) -> str:
    """Return `value` if it is a valid Kubernetes label value (may be empty)."""
    if not isinstance(value, str):
        raise InvalidName(f"label value {value!r} must be a string")
    if value and (len(value) > LABEL_VALUE_MAX or not _LABEL_NAME_RE.match(value)):
        raise InvalidName(
            f"label value {value!r} must be empty or 1-{LABEL_VALUE_MAX} characters of "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    return value


def check_labels(labels: Mapping[str, str], *, max_count: int = LABELS_MAX) -> dict[str, str]:
    """Validate every key and value of a label map (at most `max_count` of them)."""
    if not isinstance(labels, Mapping):
        raise InvalidName("labels must be an object of string keys and string values")
    if len(labels) > max_count:
        raise InvalidName(f"labels: {len(labels)} labels given, at most {max_count} are allowed")
    for key, value in labels.items():
        check_label_key(key)
        try:
            check_label_value(value)
        except InvalidName as exc:
            raise InvalidName(f"label {key!r}: {exc}") from exc
    return dict(labels)
