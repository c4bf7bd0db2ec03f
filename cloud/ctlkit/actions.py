"""What each `baetylctl` command does, in two steps: read and check the local input, then talk
to the server.

A handler gets the parsed arguments and the console, reads files and stdin and checks them, and
returns the coroutine function that makes the requests. So a bad manifest or a missing file is
reported before the token is even looked up, and nothing is sent half-checked.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cloud.ctlkit.client import Client, Upload, path
from cloud.ctlkit.code import zip_directory
from cloud.ctlkit.console import Console
from cloud.ctlkit.errors import ApiError, CtlError, UsageError
from cloud.ctlkit.manifests import (
    Document,
    config_body,
    read_bytes,
    read_documents,
    read_text,
    to_map,
)
from cloud.ctlkit.output import Result, nothing_found

Call = Callable[[Client], Awaitable[Result]]
Handler = Callable[[argparse.Namespace, Console], Call]


@dataclass(frozen=True)
class Kind:
    """A resource kind: the word users type and the REST collection it lives in."""

    word: str
    collection: str


NODE = Kind("node", "nodes")
APP = Kind("app", "apps")
CONFIG = Kind("config", "configs")
SECRET = Kind("secret", "secrets")
REGISTRY = Kind("registry", "registries")
CERTIFICATE = Kind("certificate", "certificates")
KINDS = (NODE, APP, CONFIG, SECRET, REGISTRY, CERTIFICATE)


def done(kind: Kind, name: str, what: str) -> str:
    """kubectl's one-line report of a change: `app/hello created`."""
    return f"{kind.word}/{name} {what}"


# Generic commands, the same for every kind.


def listing(kind: Kind) -> Handler:
    """`<kind> list [-l SELECTOR] [--name TEXT]`: one page holding every match."""

    def handler(args: argparse.Namespace, console: Console) -> Call:
        query = {"selector": args.selector or "", "name": args.name or ""}
        query = {key: value for key, value in query.items() if value}

        async def call(api: Client) -> Result:
            page = await api.get(path(kind.collection), query=query)
            return Result(kind.word, page, empty=nothing_found(kind.word))

        return call

    return handler


def getter(kind: Kind) -> Handler:
    """`<kind> get NAME`."""

    def handler(args: argparse.Namespace, console: Console) -> Call:
        async def call(api: Client) -> Result:
            return Result(kind.word, await api.get(path(kind.collection, args.name)))

        return call

    return handler


def deleter(kind: Kind) -> Handler:
    """`<kind> delete NAME`."""

    def handler(args: argparse.Namespace, console: Console) -> Call:
        async def call(api: Client) -> Result:
            answer = await api.delete(path(kind.collection, args.name))
            return Result(kind.word, answer, messages=(done(kind, args.name, "deleted"),))

        return call

    return handler


def creator(kind: Kind, body: Callable[[argparse.Namespace, Console], Document]) -> Handler:
    """`<kind> create NAME ...`: POST the body built (and checked) from the arguments."""

    def handler(args: argparse.Namespace, console: Console) -> Call:
        document = body(args, console)

        async def call(api: Client) -> Result:
            created = await api.post(path(kind.collection), document)
            return Result(kind.word, created, messages=(done(kind, args.name, "created"),))

        return call

    return handler


def applier(kind: Kind, shape: Callable[[Document, str], Document] | None = None) -> Handler:
    """`<kind> apply -f FILE`: create what is absent, replace what exists, document by document.

    A failed document does not stop the others (as with kubectl); it is reported and makes
    the exit status 1.
    """

    def handler(args: argparse.Namespace, console: Console) -> Call:
        label = "stdin" if args.filename == "-" else args.filename
        documents = read_documents(args.filename, console.stdin)
        if shape is not None:
            documents = [
                shape(document, f"{label}, document {number}")
                for number, document in enumerate(documents, start=1)
            ]

        async def call(api: Client) -> Result:
            applied: list[Any] = []
            messages: list[str] = []
            errors: list[str] = []
            for document in documents:
                try:
                    answer, what = await _apply_one(api, kind, document)
                except ApiError as exc:
                    errors.append(f"{kind.word}/{document['name']}: {exc.message}")
                    continue
                applied.append(answer)
                messages.append(done(kind, document["name"], what))
            data: Any = applied
            if not applied:
                data = None
            elif len(documents) == 1:
                data = applied[0]
            return Result(kind.word, data, messages=tuple(messages), errors=tuple(errors))

        return call

    return handler


async def _apply_one(api: Client, kind: Kind, document: Document) -> tuple[Any, str]:
    """(answer, "created" | "configured" | "unchanged") for one document."""
    name = document["name"]
    try:
        before = await api.get(path(kind.collection, name))
    except ApiError as exc:
        if not exc.not_found:
            raise
        return await api.post(path(kind.collection), document), "created"
    after = await api.put(path(kind.collection, name), document)
    same = isinstance(before, dict) and isinstance(after, dict)
    unchanged = same and before.get("version") == after.get("version")
    return after, "unchanged" if unchanged else "configured"


# Whole files: `apply -f`, `create -f`, `delete -f` (the `/v1/yaml` routes).

FILE_FIELD = "file"
_FILE_ROUTES = {"apply": ("PUT", ("yaml",)), "create": ("POST", ("yaml",)),
                "delete": ("POST", ("yaml", "delete"))}  # fmt: skip
_SAID = {"absent": "not found (skipped)"}


def file_sender(verb: str) -> Handler:
    """`apply|create|delete -f FILE`: the whole file to the server, which applies all of its
    documents or none (so, unlike `<kind> apply`, a refused document leaves nothing applied)."""
    method, segments = _FILE_ROUTES[verb]

    def handler(args: argparse.Namespace, console: Console) -> Call:
        if args.filename == "-":
            data, filename = console.stdin.read().encode("utf-8"), "stdin.yaml"
        else:
            data, filename = read_bytes(args.filename, what="file"), Path(args.filename).name
        upload = Upload(FILE_FIELD, filename or "resources.yaml", data)

        async def call(api: Client) -> Result:
            answer = await api.send_file(method, path(*segments), upload)
            results = answer.get("results") if isinstance(answer, dict) else None
            messages = tuple(
                f"{r.get('kind')}/{r.get('name')} {_said(r.get('result'))}"
                for r in results or []
                if isinstance(r, dict)
            )
            return Result("resource", answer, messages=messages or ("done",))

        return call

    return handler


def _said(result: object) -> str:
    """How a result reads in kubectl's words (`created`, `not found (skipped)`)."""
    text = str(result)
    return _SAID.get(text, text)


# Nodes.


def node_body(args: argparse.Namespace, console: Console) -> Document:
    """POST /v1/nodes: name, labels, and the optional description and mode."""
    body = _described({"name": args.name}, args)
    if args.mode is not None:
        body["nodeMode"] = args.mode
    return body


def node_label(args: argparse.Namespace, console: Console) -> Call:
    """`node label NAME k=v k-`: read the node, edit its labels, write them back."""
    sets: dict[str, str] = {}
    removes: set[str] = set()
    for key, value in args.edits:
        if key in sets or key in removes:
            raise UsageError(f"label {key!r} given more than once")
        if value is None:
            removes.add(key)
        else:
            sets[key] = value

    async def call(api: Client) -> Result:
        node = await api.get(path(NODE.collection, args.name))
        current = node.get("labels") if isinstance(node, dict) else None
        labels = dict(current) if isinstance(current, dict) else {}
        for key in sorted(removes - labels.keys()):
            console.warn(f"node {args.name} has no label {key!r} to remove")
        labels = {k: v for k, v in labels.items() if k not in removes} | sets
        # A PUT without description or annotations keeps them: only the labels change.
        updated = await api.put(path(NODE.collection, args.name), {"labels": labels})
        return Result(NODE.word, updated, messages=(done(NODE, args.name, "labeled"),))

    return call


def node_init(args: argparse.Namespace, console: Console) -> Call:
    """`node init NAME`: the command that installs the node on a machine (single-use token)."""

    async def call(api: Client) -> Result:
        query = {"method": args.method}
        answer = await api.get(path(NODE.collection, args.name, "init"), query=query)
        command = answer.get("cmd") if isinstance(answer, dict) else None
        if not isinstance(command, str):
            raise CtlError(f"the server's answer holds no install command: {answer!r}")
        return Result("install", answer, messages=(command,))

    return call


def node_logs(args: argparse.Namespace, console: Console) -> Call:
    """`node logs NAME APP`: recent log lines of an app, fetched from the node by the cloud."""
    query = {}
    if args.tail is not None:
        query["tailLines"] = str(args.tail)
    if args.since is not None:
        query["sinceSeconds"] = str(args.since)

    async def call(api: Client) -> Result:
        text = await api.get_text(
            path(NODE.collection, args.name, "apps", args.app, "logs"), query=query
        )
        data = {"node": args.name, "app": args.app, "logs": text}
        return Result("logs", data, messages=(text.rstrip("\n"),) if text else ())

    return call


# Configurations, secrets, registries, certificates.


def config_shape(document: Document, where: str) -> Document:
    """Accept both data shapes in config files (see manifests.config_body)."""
    return config_body(document, where=where)


def secret_body(args: argparse.Namespace, console: Console) -> Document:
    """POST /v1/secrets: data from `--from-literal k=v` and `--from-file [k=]PATH`."""
    data = to_map(args.literals, what="key")
    for key, file in args.files or []:
        if key in data:
            raise UsageError(f"key {key!r} given more than once")
        data[key] = read_text(file, what="file")
    if not data:
        raise UsageError("a secret needs data: give --from-literal KEY=VALUE or --from-file")
    return _described({"name": args.name, "data": data}, args)


def registry_body(args: argparse.Namespace, console: Console) -> Document:
    """POST /v1/registries; the password comes from stdin unless given (and warned about)."""
    if args.password_stdin:
        password = console.stdin.read().rstrip("\r\n")
    else:
        console.warn("--password leaves the password in the shell history; use --password-stdin")
        password = args.password
    if not password:
        raise UsageError("the registry password is empty")
    body = {
        "name": args.name,
        "address": args.address,
        "username": args.username,
        "password": password,
    }
    return _described(body, args)


def certificate_body(args: argparse.Namespace, console: Console) -> Document:
    """POST /v1/certificates: the PEM certificate (chain) and its private key."""
    data = {
        "certificate": read_text(args.cert, what="certificate"),
        "key": read_text(args.key, what="private key"),
    }
    return _described({"name": args.name, "data": data}, args)


def _described(body: Document, args: argparse.Namespace) -> Document:
    """`body` with the labels and description given on the command line, if any."""
    labels = to_map(args.labels, what="label")
    if labels:
        body["labels"] = labels
    if args.description is not None:
        body["description"] = args.description
    return body


# Objects and function code.

OBJECT_ITEM = "object"


def object_path(bucket: str, name: str) -> str:
    """`/v1/objects/BUCKET/NAME`, the name's '/' kept (objects live in folders)."""
    return path("objects", bucket) + "/" + quote(name, safe="/")


def split_object(text: str) -> tuple[str, str]:
    """`BUCKET/NAME` as (bucket, name); UsageError when either part is missing."""
    bucket, _, name = text.partition("/")
    if not bucket or not name:
        raise UsageError(f"{text!r}: give the object as BUCKET/NAME")
    return bucket, name


def object_upload(args: argparse.Namespace, console: Console) -> Call:
    """`object upload BUCKET/NAME FILE`: store a file in the cloud's object store."""
    bucket, name = split_object(args.object)
    data = read_bytes(args.file, what="file")

    async def call(api: Client) -> Result:
        record = await api.put_bytes(object_path(bucket, name), data)
        return Result(OBJECT_ITEM, record, messages=(f"object/{bucket}/{name} uploaded",))

    return call


def object_listing(args: argparse.Namespace, console: Console) -> Call:
    """`object list [BUCKET]`: the buckets, or the objects of one."""

    async def call(api: Client) -> Result:
        if args.bucket is None:
            found = await api.get("/v2/objects/local/buckets")
            return Result("bucket", {"items": found.get("buckets", [])}, empty="no buckets")
        found = await api.get(f"/v2/objects/local/buckets/{quote(args.bucket, safe='')}/objects")
        return Result(OBJECT_ITEM, {"items": found.get("objects", [])}, empty="no objects")

    return call


def object_delete(args: argparse.Namespace, console: Console) -> Call:
    """`object delete BUCKET/NAME`."""
    bucket, name = split_object(args.object)

    async def call(api: Client) -> Result:
        await api.delete(object_path(bucket, name))
        return Result(OBJECT_ITEM, None, messages=(f"object/{bucket}/{name} deleted",))

    return call


def push_code(args: argparse.Namespace, console: Console) -> Call:
    """`config push-code NAME DIR`: zip DIR, upload it, point the configuration's item at it.

    The configuration is created when absent; otherwise only the code item changes (other items
    are kept), so the apps that mount it roll out the new code — or nothing happens when the
    code did not change (the zip is reproducible, the configuration keeps its version).
    """
    data = zip_directory(Path(args.directory))
    bucket = args.bucket
    name = args.object or f"{args.name}/{args.key}"
    item = {
        "key": args.key,
        "value": {
            "type": "object",
            "source": "local",
            "bucket": bucket,
            "object": name,
            "unpack": "zip",
        },
    }
    console.progress(f"uploading {len(data)} bytes of code to {bucket}/{name}")

    async def call(api: Client) -> Result:
        record = await api.put_bytes(object_path(bucket, name), data)
        try:
            current = await api.get(path(CONFIG.collection, args.name))
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = {"name": args.name, "data": [item]}
            saved = await api.post(path(CONFIG.collection), body)
            what = "created"
        else:
            items = [i for i in current.get("data", []) if i.get("key") != args.key]
            body = {
                "name": args.name,
                "labels": current.get("labels", {}),
                "description": current.get("description", ""),
                "data": [*items, item],
            }
            saved = await api.put(path(CONFIG.collection, args.name), body)
            what = "unchanged" if saved.get("version") == current.get("version") else "configured"
        messages = (
            f"object/{bucket}/{name} uploaded (sha256 {record.get('sha256', '?')[:12]})",
            done(CONFIG, args.name, what),
        )
        return Result(CONFIG.word, saved, messages=messages)

    return call
