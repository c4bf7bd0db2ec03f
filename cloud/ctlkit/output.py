"""What `baetylctl` prints: `-o json` and `-o yaml` show the server's answer as it came,
`-o table` (the default) shows aligned columns chosen per kind of resource.

JSON and YAML are for scripts, so they are the REST answer unchanged (a list is the whole page
with `total`); tables are for people, so they pick the few fields that tell resources apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")
EMPTY = "-"
NODE_NAME_LABEL = "baetyl-node-name"
KIND_LABEL = "secret-type"  # which of secret, certificate, registry a Secret is
PLURALS = {"registry": "registries"}
READY = {0: "never", 1: "online", 2: "offline"}  # DESIGN §6: 0 never connected, 1/2 presence
Item = Mapping[str, Any]
Cell = Callable[[Item], str]


@dataclass(frozen=True)
class Result:
    """What a command produced.

    `data` is printed by `-o json|yaml` (None: nothing to print); `messages` replace the table
    in table mode (for commands that change things, like kubectl's "created"). `empty` is said
    on stderr when a table has no rows (a list with no matches), `errors` go to stderr and make
    the exit status 1 (a multi-document apply keeps going after a failed document).
    """

    kind: str
    data: Any
    messages: tuple[str, ...] = ()
    empty: str | None = None
    errors: tuple[str, ...] = ()


def render(result: Result, fmt: str) -> str:
    """The text to print on stdout (possibly empty), ending with a newline when not empty."""
    if result.data is None and fmt != "table":
        return ""
    if fmt == "json":
        return json.dumps(result.data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        documents = result.data if isinstance(result.data, list) else [result.data]
        return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    if result.messages or result.data is None:
        return "".join(f"{line}\n" for line in result.messages)
    return table(result.kind, _rows_of(result.data))


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line text (PEM, config files) as `|` blocks people can read."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def nothing_found(kind: str) -> str:
    """What table mode says (on stderr) for an empty list, instead of a lone header row."""
    return f"no {PLURALS.get(kind, kind + 's')} found"


def table(kind: str, rows: Sequence[Item]) -> str:
    """Rows of `kind` as aligned columns under a header row; empty when there are no rows."""
    if not rows:
        return ""
    columns = COLUMNS.get(kind, _GENERIC)
    cells = [[name for name, _ in columns]]
    cells += [[_clean(cell(row)) for _, cell in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ("   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells)
    return "".join(line.rstrip() + "\n" for line in lines)


def _rows_of(data: Any) -> list[Item]:
    """Table rows of an answer: a page's items, a list's elements, or the one object."""
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        return [item for item in data["items"] if isinstance(item, dict)]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    return [data] if isinstance(data, dict) else []


def _clean(text: str) -> str:
    """A cell on one line, and something visible when empty."""
    flat = " ".join(text.split())
    return flat or EMPTY


def text(key: str) -> Cell:
    """A column showing field `key` as text."""

    def cell(item: Item) -> str:
        value = item.get(key)
        return "" if value is None else str(value)

    return cell


def labels(item: Item) -> str:
    """A label map as `k=v,k=v`, sorted."""
    value = item.get("labels")
    if not isinstance(value, dict):
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(value.items()))


def node_labels(item: Item) -> str:
    """A node's labels without `baetyl-node-name=<name>`, which the cloud adds to every node
    and which would only repeat the NAME column."""
    value = item.get("labels")
    if not isinstance(value, dict):
        return ""
    shown = {k: v for k, v in value.items() if (k, v) != (NODE_NAME_LABEL, item.get("name"))}
    return labels({"labels": shown})


def created(item: Item) -> str:
    """`createTime` in UTC to the second: enough to tell resources apart, short enough to read."""
    return timestamp(item.get("createTime"))


def timestamp(value: Any) -> str:
    """An RFC 3339 time as `YYYY-MM-DDTHH:MM:SSZ` (UTC); anything else as it came."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_labels(item: Item) -> str:
    """A secret's labels without `secret-type`, the same on every row of `secret list`."""
    value = item.get("labels")
    if not isinstance(value, dict):
        return ""
    return labels({"labels": {k: v for k, v in value.items() if k != KIND_LABEL}})


def ready(item: Item) -> str:
    """A node's readiness in words."""
    value = item.get("ready")
    return READY.get(value, str(value)) if isinstance(value, int) else ""


def services(item: Item) -> str:
    """An app's service names."""
    found = item.get("services")
    if not isinstance(found, list):
        return ""
    return ",".join(str(s.get("name", "?")) for s in found if isinstance(s, dict))


def data_keys(item: Item) -> str:
    """How many keys a config or secret holds (both data shapes), or nothing if not shown."""
    data = item.get("data")
    if isinstance(data, dict | list):
        return str(len(data))
    return ""


def expires(item: Item) -> str:
    """A certificate's end of validity."""
    return timestamp(item.get("expiredTime"))


_GENERIC: list[tuple[str, Cell]] = [("NAME", text("name")), ("CREATED", created)]
COLUMNS: dict[str, list[tuple[str, Cell]]] = {
    "bucket": [("NAME", text("name")), ("OBJECTS", text("objects"))],
    "object": [
        ("NAME", text("object")),
        ("SIZE", text("size")),
        ("SHA256", lambda item: str(item.get("sha256", ""))[:12]),
        ("UPDATED", text("updateTime")),
    ],
    "node": [
        ("NAME", text("name")),
        ("READY", ready),
        ("MODE", text("nodeMode")),
        ("LABELS", node_labels),
        ("VERSION", text("version")),
        ("CREATED", created),
    ],
    "app": [
        ("NAME", text("name")),
        ("VERSION", text("version")),
        ("MODE", text("mode")),
        ("SELECTOR", text("selector")),
        ("SERVICES", services),
        ("CREATED", created),
    ],
    "config": [
        ("NAME", text("name")),
        ("VERSION", text("version")),
        ("DATA", data_keys),
        ("LABELS", labels),
        ("CREATED", created),
    ],
    "secret": [
        ("NAME", text("name")),
        ("VERSION", text("version")),
        ("DATA", data_keys),
        ("LABELS", secret_labels),
        ("CREATED", created),
    ],
    "registry": [
        ("NAME", text("name")),
        ("ADDRESS", text("address")),
        ("USERNAME", text("username")),
        ("VERSION", text("version")),
        ("CREATED", created),
    ],
    "certificate": [
        ("NAME", text("name")),
        ("ISSUER", text("issuer")),
        ("SERIAL", text("serialNumber")),
        ("EXPIRES", expires),
        ("CREATED", created),
    ],
}
