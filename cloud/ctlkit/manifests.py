"""Reading what users hand to `baetylctl`: YAML/JSON manifests, `k=v` pairs and local files.

Everything is checked before the first request, so a typo in the third document of a file does
not leave the first two applied and the rest not.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import yaml

from cloud.ctlkit.errors import CtlError, UsageError

Document = dict[str, Any]


def read_documents(source: str, stdin: TextIO) -> list[Document]:
    """The resource documents of file `source` (`-` is stdin), each a mapping with a `name`.

    A file holds YAML documents separated by `---`, or JSON; a top-level list, or a list page
    as `-o json|yaml` prints it (`{"items": [...]}`), counts as several documents.
    """
    label = "stdin" if source == "-" else source
    text = stdin.read() if source == "-" else read_text(source, what="manifest")
    try:
        loaded = _load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise CtlError(f"{label} is neither valid YAML nor JSON: {exc}") from exc
    documents: list[Any] = []
    for item in loaded:
        if isinstance(item, list):
            documents.extend(item)
        elif isinstance(item, dict) and "name" not in item and isinstance(item.get("items"), list):
            documents.extend(item["items"])
        elif item is not None:
            documents.append(item)
    if not documents:
        raise CtlError(f"{label} holds no document to apply")
    for number, document in enumerate(documents, start=1):
        where = f"{label}, document {number}"
        if not isinstance(document, dict):
            raise CtlError(f"{where}: expected a mapping, found {type(document).__name__}")
        name = document.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CtlError(f"{where}: needs a 'name' (a string)")
    repeated = [n for n, count in Counter(d["name"] for d in documents).items() if count > 1]
    if repeated:
        raise CtlError(f"{label}: {', '.join(sorted(repeated))} defined more than once")
    return documents


def _load(text: str) -> list[Any]:
    """Documents of a text: JSON when it looks like JSON (YAML rejects JSON's tab indents)."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except ValueError:
            pass  # maybe YAML flow style after all: let the YAML parser explain the problem
    return list(yaml.safe_load_all(text))


def config_body(document: Document, *, where: str) -> Document:
    """A configuration in the REST view: `data` as Baetyl's item list.

    Files may also write `data` as a `{key: text}` map, the stored form, which is easier to
    write by hand; it is turned into `[{key, value: {type: kv, value: text}}]`.
    """
    data = document.get("data")
    if data is None or isinstance(data, list):
        return document
    if not isinstance(data, dict):
        raise CtlError(f"{where}: data must be a list of {{key, value}} items or a key: text map")
    items = []
    for key, value in data.items():
        if not isinstance(value, str):
            raise CtlError(
                f"{where}: data.{key} is {type(value).__name__}; values must be text "
                "(quote numbers and booleans in YAML)"
            )
        items.append({"key": str(key), "value": {"type": "kv", "value": value}})
    return {**document, "data": items}


def read_text(path: str, *, what: str) -> str:
    """A local file as UTF-8 text, or a CtlError naming the file and the problem."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CtlError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CtlError(f"{what} {path} is not UTF-8 text") from exc


def read_bytes(path: str, *, what: str) -> bytes:
    """A local file's bytes, or a CtlError naming the file and the problem."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CtlError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def pair(text: str) -> tuple[str, str]:
    """`k=v` as (k, v); an argparse type, so a bad pair is a usage error (exit status 2)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def label_edit(text: str) -> tuple[str, str | None]:
    """`k=v` (set) or `k-` (remove, value None), kubectl's label syntax; an argparse type."""
    if "=" not in text and text.endswith("-") and len(text) > 1:
        return text[:-1], None
    try:
        return pair(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE to set or KEY- to remove a label, got {text!r}"
        ) from None


def to_map(pairs: list[tuple[str, str]] | None, *, what: str) -> dict[str, str]:
    """Pairs as a map; a key given twice is an error rather than a silent last-one-wins."""
    result: dict[str, str] = {}
    for key, value in pairs or []:
        if key in result:
            raise UsageError(f"{what} {key!r} given more than once")
        result[key] = value
    return result


def file_source(text: str) -> tuple[str, str]:
    """`KEY=PATH`, or `PATH` keyed by the file's name (kubectl's `--from-file`); argparse type."""
    if "=" in text:
        return pair(text)
    name = Path(text).name
    if not name:
        raise argparse.ArgumentTypeError(f"expected [KEY=]PATH of a file, got {text!r}")
    return name, text
