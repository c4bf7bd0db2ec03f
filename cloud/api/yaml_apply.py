"""Applying a multi-document file: every document read and checked first, then all of them
written in dependency order in one transaction (cloud.services.batches), or none.

A document is either a Kubernetes object (it has `apiVersion`; converted as Baetyl converts
it, cloud.api.kube_objects) or a Baetyl-Py resource: the body of the kind's own REST route with
a `kind` beside its fields (`kind: config`, `name: ...`, `data: [...]`). Registries, secrets,
certificates and configurations are written before the apps that mount them, nodes last; a
delete goes the other way. The reading names every bad document in one 400; a write that fails
names its document, and nothing stays written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel

from cloud.api import kube_objects as kube
from cloud.api import yaml_kinds
from cloud.api.http import parse_body
from cloud.api.resource_views import check_namespace
from cloud.api.yaml_kinds import Kind
from cloud.api.yaml_upload import Document
from cloud.errors import CloudError, Conflict, Invalid
from cloud.services import apps, batches
from cloud.services.app_spec import ApplicationView
from cloud.services.context import Caller, CloudContext

Result = Literal["created", "configured", "unchanged", "deleted", "absent"]
_STORED_TYPES: Final = {"config": "secret", "certificate": "certificate", "registry": "registry"}
_BODY_PREFIX: Final = "invalid request body: "
T = TypeVar("T")


@dataclass
class Entry:
    """One resource of the file: its document, kind, name and body (JSON and parsed)."""

    document: Document
    what: str  # how messages name it: `Deployment nginx`, `config settings`
    kind: Kind
    name: str
    raw: bytes = b""
    body: Any = None

    @property
    def where(self) -> str:
        """`document 3 (line 12, Deployment nginx)`."""
        return f"document {self.document.number} (line {self.document.line}, {self.what})"


@dataclass
class Rule:
    """A Kubernetes Service of the file and the in-file apps it already changed."""

    document: Document
    rule: kube.PortRule
    ports_found: set[int] = field(default_factory=set)
    in_file: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        """`document 5 (line 40, Service nginx-svc)`."""
        number, line = self.document.number, self.document.line
        return f"document {number} (line {line}, Service {self.rule.name})"


@dataclass(frozen=True)
class Outcome:
    """What happened to one resource."""

    kind: str
    name: str
    document: int
    result: Result


@dataclass
class Applied:
    """The views of the resources written, in the order written, and what happened to each."""

    items: list[BaseModel] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class _Problems:
    """The problems of a file's documents, reported together in one 400."""

    LIMIT: Final = 20

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def attempt(self, document: Document, what: str, step: Callable[[], T]) -> T | None:
        """`step()`, or None with its Invalid (naming the document) kept for later."""
        try:
            with about(_where(document, what)):
                return step()
        except Invalid as exc:
            self.found.append((document.number, exc.message))
            return None

    def raise_any(self) -> None:
        """Invalid naming every problem found (the first LIMIT of them), in file order."""
        if not self.found:
            return
        messages = [message for _, message in sorted(self.found, key=lambda p: p[0])]
        more = len(messages) - self.LIMIT
        shown = messages[: self.LIMIT] + ([f"and {more} more"] if more > 0 else [])
        raise Invalid("; ".join(shown))


@contextmanager
def about(where: str) -> Iterator[None]:
    """Name the document in the message of an error raised inside (status and code kept)."""
    try:
        yield
    except CloudError as exc:
        message = exc.message.removeprefix(_BODY_PREFIX)
        exc.message = f"{where}: {message}"
        exc.args = (exc.message,)
        raise


# Reading ---------------------------------------------------------------------------------------


async def read_for_apply(
    caller: Caller, documents: list[Document]
) -> tuple[list[Entry], list[Rule]]:
    """Every document converted and parsed as its route parses a body, in write order; Invalid
    naming the problems of every document that has one."""
    problems = _Problems()
    entries: list[Entry] = []
    objects: list[tuple[Document, Any]] = []
    for document in documents:
        value = document.value
        if kube.is_kube(value):
            obj = problems.attempt(document, _kube_what(value), partial(kube.parse, value))
            if obj is not None:
                objects.append((document, obj))
        else:
            entry = problems.attempt(
                document, _baetyl_what(value), partial(_baetyl_entry, document)
            )
            if entry is not None:
                entries.append(entry)
    types = await _secret_types(caller, entries, [obj for _, obj in objects])
    rules: list[Rule] = []
    for document, obj in objects:
        what = f"{obj.kind} {obj.metadata.name}"
        converted = problems.attempt(
            document, what, partial(_converted, document, obj, types, caller)
        )
        if isinstance(converted, kube.PortRule):
            rules.append(Rule(document, converted))
        elif isinstance(converted, Entry):
            entries.append(converted)
    for rule in rules:
        for entry in entries:
            if entry.kind is yaml_kinds.APP:
                _apply_rule(rule, entry)
    for entry in entries:
        parse = partial(entry.kind.parse, entry.raw, caller, existing=False)
        parsed = problems.attempt(entry.document, entry.what, parse)
        if parsed is not None:
            entry.name, entry.body = parsed
    problems.raise_any()
    _refuse_repeats(entries)
    return _in_order(entries), rules


def _converted(
    document: Document, obj: Any, types: Mapping[str, str], caller: Caller
) -> Entry | kube.PortRule:
    """A parsed Kubernetes object as an entry of its kind, or a Service's port rule."""
    converted = kube.convert(obj, types)
    if isinstance(converted, kube.PortRule):
        check_namespace(converted.namespace, caller)
        return converted
    kind = yaml_kinds.BY_WORD[converted.kind]
    what = f"{obj.kind} {obj.metadata.name}"
    return Entry(document, what, kind, converted.name, _json(converted.body))


def read_for_delete(caller: Caller, documents: list[Document]) -> tuple[list[Entry], list[Rule]]:
    """Every document's kind and name (a delete reads no more), in delete order; Invalid naming
    the problems of every document that has one."""
    problems = _Problems()
    entries: list[Entry] = []
    rules: list[Rule] = []
    for document in documents:
        value = document.value
        kube_object = kube.is_kube(value)
        what = _kube_what(value) if kube_object else _baetyl_what(value)
        read = _kube_to_delete if kube_object else _baetyl_to_delete
        found = problems.attempt(document, what, partial(read, document, what, caller))
        if isinstance(found, Rule):
            rules.append(found)
        elif isinstance(found, Entry):
            entries.append(found)
    problems.raise_any()
    _refuse_repeats(entries)
    return list(reversed(_in_order(entries))), rules


def _baetyl_to_delete(document: Document, what: str, caller: Caller) -> Entry:
    entry = _baetyl_entry(document)
    check_namespace(_text_or_none(document.value.get("namespace"), "namespace"), caller)
    entry.name = entry.kind.check_name(entry.name)
    return entry


def _kube_to_delete(document: Document, what: str, caller: Caller) -> Entry | Rule:
    value = document.value
    meta = value.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    check_namespace(_text_or_none(meta.get("namespace"), "metadata.namespace"), caller)
    if value.get("kind") == "Service" or value.get("kind") not in kube.KINDS:
        converted = kube.convert(kube.parse(value), {})  # refuses the kinds not converted
        assert isinstance(converted, kube.PortRule)
        return Rule(document, converted)
    kind = yaml_kinds.BY_WORD[_kube_delete_kind(value)]
    name = kind.check_name(_text_or_none(meta.get("name"), "metadata.name") or "")
    return Entry(document, what, kind, name)


def _baetyl_what(value: Mapping[str, Any]) -> str:
    """How messages name a Baetyl-Py document: `config settings`."""
    kind, name = value.get("kind"), value.get("name")
    return f"{kind} {name}" if isinstance(kind, str) and isinstance(name, str) else "resource"


def _baetyl_entry(document: Document) -> Entry:
    """A Baetyl-Py document: its kind, and its body (the rest) as JSON."""
    value = dict(document.value)
    given = value.pop("kind", None)
    kind = yaml_kinds.BY_WORD.get(given) if isinstance(given, str) else None
    if kind is None:
        known = "application (app), config (configuration), secret, certificate, registry, node"
        raise Invalid(
            f"kind: {given!r} is not one of {known}; a Kubernetes object names its "
            f"apiVersion and one of {', '.join(kube.KINDS)}"
        )
    name = value.get("name")
    what = _baetyl_what(document.value)
    return Entry(document, what, kind, name if isinstance(name, str) else "", _json(value))


def _kube_delete_kind(value: Mapping[str, Any]) -> str:
    kind = str(value.get("kind"))
    if kind == "Secret":
        given = value.get("type", "Opaque")
        return {kube.DOCKER_CONFIG: "registry", kube.TLS: "certificate"}.get(str(given), "secret")
    return {"ConfigMap": "config"}.get(kind, "app")


async def _secret_types(caller: Caller, entries: list[Entry], objects: list[Any]) -> dict[str, str]:
    """The kind (secret, certificate, registry) of every Secret a workload mounts: the file's
    own first, else the stored one's."""
    types = {e.name: e.kind.word for e in entries if e.kind.word in yaml_kinds.SECRET_FAMILY}
    for obj in objects:
        if isinstance(obj, kube.KubeSecret):
            types[obj.metadata.name] = kube.kind_of(obj)
    wanted = set().union(*(kube.secrets_mounted(obj) for obj in objects)) - types.keys()
    if wanted:
        stored = await batches.secret_types(caller, wanted)
        types.update({name: _STORED_TYPES.get(kind, kind) for name, kind in stored.items()})
    return types


def _refuse_repeats(entries: list[Entry]) -> None:
    seen: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        family = "secret" if entry.kind.word in yaml_kinds.SECRET_FAMILY else entry.kind.word
        key = (family, entry.name)
        first = seen.setdefault(key, entry)
        if first is not entry:
            raise Invalid(
                f"{entry.where}: the name {entry.name!r} is taken by "
                f"document {first.document.number} ({first.what}) of the same file"
            )


def _in_order(entries: list[Entry]) -> list[Entry]:
    rank = {id(kind): index for index, kind in enumerate(yaml_kinds.ORDER)}
    return sorted(entries, key=lambda e: rank[id(e.kind)])  # stable: file order within a kind


def _apply_rule(rule: Rule, entry: Entry) -> None:
    """Put a Service's NodePorts on an app of the file that it selects."""
    value = json.loads(entry.raw)
    labels = value.get("labels")
    if not rule.rule.node_ports or not _selects(rule.rule.selector, labels):
        return
    rule.in_file.append(entry.name)
    rule.ports_found |= _set_node_ports(value, rule.rule.node_ports, reset=False)
    entry.raw = _json(value)


def _selects(selector: Mapping[str, str], labels: object) -> bool:
    return isinstance(labels, dict) and all(labels.get(k) == v for k, v in selector.items())


def _set_node_ports(app: dict[str, Any], node_ports: Mapping[int, int], *, reset: bool) -> set[int]:
    """Set (or, with `reset`, take back) the NodePorts of the app's container ports that the
    rule names; the container ports found."""
    found: set[int] = set()
    services = app.get("services")
    for service in services if isinstance(services, list) else []:
        ports = service.get("ports") if isinstance(service, dict) else None
        for port in ports if isinstance(ports, list) else []:
            target = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(target, int) or target not in node_ports:
                continue
            found.add(target)
            if not reset:
                port.update(serviceType="NodePort", nodePort=node_ports[target])
            elif port.get("serviceType") == "NodePort":
                port.pop("serviceType", None)
                port.pop("nodePort", None)
    return found


# Writing ---------------------------------------------------------------------------------------


async def apply(
    ctx: CloudContext,
    caller: Caller,
    read: tuple[list[Entry], list[Rule]],
    *,
    create_only: bool,
) -> Applied:
    """Create (and, unless `create_only`, replace) every entry, then apply the Services to the
    stored apps they select; one transaction, nothing written when anything fails."""
    entries, rules = read
    done = Applied()
    async with batches.batch(ctx, caller) as inner:
        before: list[BaseModel | None] = []
        for entry in entries:
            with about(entry.where):
                current = await entry.kind.current(inner, caller, entry.name)
                if current is not None and create_only:
                    raise Conflict(f"{entry.kind.word} {entry.name!r} already exists")
                if current is not None and entry.kind.update_differs:
                    entry.name, entry.body = entry.kind.parse(entry.raw, caller, existing=True)
            before.append(current)
        patches = await _stored_patches(
            caller, rules, {e.name for e in entries if e.kind is yaml_kinds.APP}, reset=False
        )
        for entry, current in zip(entries, before, strict=True):
            with about(entry.where):
                if current is None:
                    view = await entry.kind.create(inner, caller, entry.name, entry.body)
                    result: Result = "created"
                else:
                    view = await entry.kind.replace(inner, caller, entry.name, entry.body)
                    result = "unchanged" if entry.kind.same(current, view) else "configured"
            done.items.append(view)
            done.outcomes.append(
                Outcome(entry.kind.word, entry.name, entry.document.number, result)
            )
        await _write_patches(inner, caller, patches, done)
    return done


async def delete(
    ctx: CloudContext, caller: Caller, read: tuple[list[Entry], list[Rule]]
) -> list[Outcome]:
    """Take the Services' NodePorts back from the apps they select, then delete every entry
    (absent ones are skipped, as Baetyl skips them); one transaction."""
    entries, rules = read
    done = Applied()
    async with batches.batch(ctx, caller) as inner:
        deleted_apps = {e.name for e in entries if e.kind is yaml_kinds.APP}
        patches = await _stored_patches(caller, rules, deleted_apps, reset=True)
        await _write_patches(inner, caller, patches, done)
        for entry in entries:
            with about(entry.where):
                if await entry.kind.current(inner, caller, entry.name) is None:
                    result: Result = "absent"
                else:
                    await entry.kind.delete(inner, caller, entry.name)
                    result = "deleted"
            done.outcomes.append(
                Outcome(entry.kind.word, entry.name, entry.document.number, result)
            )
    return done.outcomes


@dataclass(frozen=True)
class _Patch:
    """A stored app a Service selects, with its ports changed (None: nothing to change)."""

    rule: Rule
    name: str
    view: ApplicationView | None


async def _stored_patches(
    caller: Caller, rules: list[Rule], skipped: set[str], *, reset: bool
) -> list[_Patch]:
    """The stored apps (other than `skipped`) each NodePort Service selects, each with its
    ports changed; for an apply, Invalid when a Service selects no app or names a port none
    of them has."""
    patches: list[_Patch] = []
    for rule in rules:
        node_ports = rule.rule.node_ports
        if not node_ports:
            continue  # a ClusterIP Service changes nothing, as in Baetyl
        selector = ",".join(f"{k}={v}" for k, v in sorted(rule.rule.selector.items()))
        with about(rule.where):
            found = await apps.listing(caller, selector=selector, name="", offset=0, limit=None)
            matched = list(rule.in_file)
            for view in found.items:
                if view.name in skipped:
                    continue
                matched.append(view.name)
                value = view.model_dump(mode="json", by_alias=True, exclude_none=True)
                rule.ports_found |= _set_node_ports(value, node_ports, reset=reset)
                changed = value != view.model_dump(mode="json", by_alias=True, exclude_none=True)
                patched = parse_body(_json(value), ApplicationView) if changed else None
                patches.append(_Patch(rule, view.name, patched))
            if not reset:
                _check_rule(rule, selector, matched)
    return patches


def _check_rule(rule: Rule, selector: str, matched: list[str]) -> None:
    if not matched:
        raise Invalid(f"spec.selector: no application has the labels {selector}")
    missing = sorted(set(rule.rule.node_ports) - rule.ports_found)
    if missing:
        raise Invalid(
            f"spec.ports: no container port {missing[0]} in the applications it selects "
            f"({', '.join(sorted(matched))})"
        )


async def _write_patches(
    ctx: CloudContext, caller: Caller, patches: list[_Patch], done: Applied
) -> None:
    for patch in patches:
        result: Result = "unchanged"
        if patch.view is not None:
            with about(patch.rule.where):
                await apps.update(ctx, caller, patch.name, patch.view)
            result = "configured"
        done.outcomes.append(Outcome("app", patch.name, patch.rule.document.number, result))


# Helpers ---------------------------------------------------------------------------------------


def _where(document: Document, what: str) -> str:
    return f"document {document.number} (line {document.line}, {what})"


def _kube_what(value: Mapping[str, Any]) -> str:
    meta = value.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    kind = value.get("kind")
    kind_text = kind if isinstance(kind, str) else "object"
    return f"{kind_text} {name}" if isinstance(name, str) else kind_text


def _text_or_none(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Invalid(f"{where}: must be text")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
