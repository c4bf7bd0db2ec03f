"""The value types of `baetyl-cloud`'s options: each parses one flag's text and says clearly what
it expected (argparse turns an ArgumentTypeError into a usage error naming the flag)."""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from cloud.store.db import StoreError, check_url


def listen(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host may be bracketed)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def db_url(text: str) -> str:
    """A database URL the store can open (sqlite://…, postgres://…)."""
    try:
        return check_url(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def mqtt_url(text: str) -> tuple[str, int]:
    """mqtts://HOST:PORT, nothing more: the broker's TLS listener."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected mqtts://HOST:PORT, got {text!r}: {exc}"
        ) from exc
    if parts.scheme != "mqtts" or not parts.hostname or port is None:
        raise argparse.ArgumentTypeError(
            f"expected mqtts://HOST:PORT (TLS with a client certificate), got {text!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise argparse.ArgumentTypeError(f"expected only mqtts://HOST:PORT, got {text!r}")
    return parts.hostname, port


def init_url(text: str) -> str:
    """http(s)://HOST[:PORT][/PATH], the address nodes reach the REST API at."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected http(s)://HOST[:PORT], got {text!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http(s)://HOST[:PORT], got {text!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise argparse.ArgumentTypeError(
            f"expected http(s)://HOST[:PORT][/PATH] without query or credentials, got {text!r}"
        )
    return text.rstrip("/")


def node_mqtt_url(text: str) -> str:
    """An mqtts:// URL as nodes are given it (an IPv6 host bracketed)."""
    host, port = mqtt_url(text)
    return f"mqtts://{url_host(host)}:{port}"


def url_host(host: str) -> str:
    """`host` as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def server_name(text: str) -> str:
    """A host name or an IP address a client dials (it goes into a server certificate)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        labels = text.rstrip(".").split(".")
        if not text or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise argparse.ArgumentTypeError(
                f"expected a host name or an IP address, got {text!r}"
            ) from None
    return text


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def replica(text: str) -> str:
    """A replica name: letters, digits, '-', '_' and '.'."""
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise argparse.ArgumentTypeError(
            f"a replica name uses letters, digits, '-', '_' and '.', got {text!r}"
        )
    return text


def count(text: str) -> int:
    """A whole number >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def bounded(low: float, high: float, *, integer: bool = False) -> Callable[[str], float]:
    """A number (or whole number) from `low` to `high`."""
    kind = "a whole number" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected {kind} from {low:g} to {high:g}, got {text}"
            )
        return value

    return parse
