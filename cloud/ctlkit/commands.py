"""The command line of `baetylctl`: `baetylctl [options] RESOURCE VERB [arguments]`.

Global options are accepted before the resource and after the verb alike
(`baetylctl -o json node list` and `baetylctl node list -o json`), as kubectl users expect;
each leaf parser carries its handler (actions.Handler) in `args.handler`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cloud.ctlkit import actions
from cloud.ctlkit.actions import Handler, Kind
from cloud.ctlkit.config import DEFAULT_URL, TOKEN_ENV, URL_ENV
from cloud.ctlkit.manifests import file_source, label_edit, pair
from cloud.ctlkit.output import FORMATS

DEFAULT_TIMEOUT = 30.0
Subparsers = Any  # argparse's _SubParsersAction is private; nothing typed to name it with


def positive_seconds(text: str) -> float:
    """A timeout in seconds, > 0; an argparse type."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive, got {text!r}")
    return value


def _bounded_int(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number from {low} to {high}")
        return int(text)

    return parse


_lines = _bounded_int(1, 10_000, "--tail")
_seconds = _bounded_int(1, 30 * 24 * 3600, "--since")


def _common() -> argparse.ArgumentParser:
    """Global options, as a parent of the top parser and of every leaf.

    Defaults are suppressed so a value given before the resource is not overwritten by the
    leaf's default; `options()` supplies the defaults afterwards.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--url",
        help=f"server root URL (else ${URL_ENV}, else the config file, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--token", help=f"API token (else ${TOKEN_ENV}, else the config file's token)"
    )
    group.add_argument("-o", "--output", choices=FORMATS, help="output format (default: table)")
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help=f"give up on a request after this long (default: {DEFAULT_TIMEOUT:g})",
    )
    return common


def options(args: argparse.Namespace) -> tuple[str | None, str | None, str, float]:
    """(url, token, output format, timeout) with defaults filled in."""
    return (
        getattr(args, "url", None),
        getattr(args, "token", None),
        getattr(args, "output", "table"),
        getattr(args, "timeout", DEFAULT_TIMEOUT),
    )


def build_parser(version: str) -> argparse.ArgumentParser:
    """The full parser; `--help` works at every level."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="baetylctl",
        parents=[common],
        description=(
            "Manage nodes, applications, configurations, secrets, certificates and registries "
            "of a Baetyl-Py cloud through its REST API."
        ),
        epilog=(
            "The server and token come from --url/--token, else BAETYL_URL/BAETYL_TOKEN, "
            "else $XDG_CONFIG_HOME/baetyl/config.yaml (keys url, token). "
            "Run 'baetylctl RESOURCE --help' for the verbs of a resource; 'baetylctl apply -f "
            "FILE' applies a whole file of any kinds."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    resources = parser.add_subparsers(dest="resource", metavar="RESOURCE", title="resources")
    leaf = _leaf_factory(common)
    _files(resources, leaf)
    _nodes(resources, leaf)
    _apps(resources, leaf)
    _configs(resources, leaf)
    _secrets(resources, leaf)
    _registries(resources, leaf)
    _certificates(resources, leaf)
    _objects(resources, leaf)
    return parser


Parser = argparse.ArgumentParser
Leaf = Callable[[Subparsers, str, str, Handler], Parser]


def _leaf_factory(common: argparse.ArgumentParser) -> Leaf:
    def leaf(
        verbs: Subparsers, name: str, summary: str, handler: Handler
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = verbs.add_parser(
            name, parents=[common], help=summary, description=summary
        )
        # The leaf parser travels along so a usage error found later shows this command's usage.
        sub.set_defaults(handler=handler, leaf_parser=sub)
        return sub

    return leaf


def _resource(resources: Subparsers, kind: Kind, summary: str) -> Subparsers:
    parser = resources.add_parser(kind.word, help=summary, description=summary)
    return parser.add_subparsers(dest="verb", metavar="VERB", title="verbs", required=True)


def _read_verbs(verbs: Subparsers, leaf: Leaf, kind: Kind, plural: str) -> None:
    """list, get and delete, the same for every kind."""
    listing = leaf(verbs, "list", f"List {plural}, newest first.", actions.listing(kind))
    listing.add_argument(
        "-l", "--selector", help="label selector, e.g. 'env=prod,tier in (edge,core)'"
    )
    listing.add_argument("--name", help="only names containing this text")
    get = leaf(verbs, "get", f"Show one {kind.word}.", actions.getter(kind))
    get.add_argument("name", metavar="NAME")
    delete = leaf(verbs, "delete", f"Delete a {kind.word}.", actions.deleter(kind))
    delete.add_argument("name", metavar="NAME")


def _described(parser: Parser) -> None:
    """Options every create takes: labels and a description."""
    parser.add_argument(
        "-l",
        "--label",
        dest="labels",
        action="append",
        type=pair,
        metavar="KEY=VALUE",
        help="a label (repeatable)",
    )
    parser.add_argument("--description", help="free text shown with the resource")


def _files(resources: Subparsers, leaf: Leaf) -> None:
    """`apply -f`, `create -f` and `delete -f`: a whole file of any kinds, all or nothing."""
    summaries = {
        "apply": "Create or replace every resource of a file (Kubernetes objects or Baetyl-Py "
        "documents with a 'kind'), all or none; PUT /v1/yaml.",
        "create": "Create every resource of a file, none if one exists already; POST /v1/yaml.",
        "delete": "Delete every resource a file names (absent ones are skipped); "
        "POST /v1/yaml/delete.",
    }
    for verb, summary in summaries.items():
        sender = leaf(resources, verb, summary, actions.file_sender(verb))
        sender.add_argument(
            "-f",
            "--filename",
            required=True,
            metavar="FILE",
            help="YAML file ('-' for stdin); documents separated by '---'",
        )


def _nodes(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.NODE, "Edge nodes.")
    create = leaf(
        verbs,
        "create",
        "Create a node; apps whose selector matches its labels are placed on it.",
        actions.creator(actions.NODE, actions.node_body),
    )
    create.add_argument("name", metavar="NAME")
    _described(create)
    create.add_argument("--mode", choices=("native", "kube"), help="how the node runs apps")
    _read_verbs(verbs, leaf, actions.NODE, "nodes")
    label = leaf(
        verbs,
        "label",
        "Set (KEY=VALUE) or remove (KEY-) labels of a node; apps follow the new labels.",
        actions.node_label,
    )
    label.add_argument("name", metavar="NAME")
    label.add_argument("edits", nargs="+", type=label_edit, metavar="KEY=VALUE|KEY-")
    init = leaf(
        verbs,
        "init",
        "Print the command that installs a node on a machine (its token is good for one "
        "install, within the cloud's --install-token-ttl).",
        actions.node_init,
    )
    init.add_argument("name", metavar="NAME")
    init.add_argument(
        "--method",
        choices=("curl", "wget"),
        default="curl",
        help="how the machine downloads the install script (default curl)",
    )
    logs = leaf(
        verbs,
        "logs",
        "Print recent log lines of an app on a node (the cloud asks the node's agent).",
        actions.node_logs,
    )
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("app", metavar="APP")
    logs.add_argument("--tail", type=_lines, metavar="N", help="only the last N lines (1-10000)")
    logs.add_argument(
        "--since", type=_seconds, metavar="SECONDS", help="only lines of the last SECONDS"
    )


def _apply(verbs: Subparsers, leaf: Leaf, kind: Kind, handler: Handler, summary: str) -> None:
    apply = leaf(verbs, "apply", summary, handler)
    apply.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="YAML or JSON file ('-' for stdin); documents separated by '---'",
    )


def _apps(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.APP, "Applications.")
    _apply(
        verbs,
        leaf,
        actions.APP,
        actions.applier(actions.APP),
        "Create or replace the applications described in a file.",
    )
    _read_verbs(verbs, leaf, actions.APP, "applications")


def _configs(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.CONFIG, "Configurations mounted into apps.")
    _apply(
        verbs,
        leaf,
        actions.CONFIG,
        actions.applier(actions.CONFIG, actions.config_shape),
        "Create or replace the configurations described in a file; 'data' is a list of "
        "{key, value: {type: kv, value}} items or a simple KEY: TEXT map.",
    )
    push = leaf(
        verbs,
        "push-code",
        "Zip a directory of function code, upload it to the cloud's object store and point "
        "the configuration's code item at it (the configuration is created when absent).",
        actions.push_code,
    )
    push.add_argument("name", metavar="NAME", help="the configuration")
    push.add_argument("directory", metavar="DIR", help="the code directory")
    push.add_argument(
        "--bucket", default="functions", help="the object store bucket (default functions)"
    )
    push.add_argument(
        "--object", metavar="NAME", help="the object's name (default CONFIG/KEY)", default=None
    )
    push.add_argument(
        "--key", default="code.zip", help="the configuration item's key (default code.zip)"
    )
    _read_verbs(verbs, leaf, actions.CONFIG, "configurations")


def _secrets(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.SECRET, "Secrets mounted into apps.")
    create = leaf(
        verbs,
        "create",
        "Create a secret from literal values and files.",
        actions.creator(actions.SECRET, actions.secret_body),
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--from-literal",
        dest="literals",
        action="append",
        type=pair,
        metavar="KEY=VALUE",
        help="a key and its value (repeatable)",
    )
    create.add_argument(
        "--from-file",
        dest="files",
        action="append",
        type=file_source,
        metavar="[KEY=]PATH",
        help="a key holding a file's text; the key defaults to the file name (repeatable)",
    )
    _described(create)
    _read_verbs(verbs, leaf, actions.SECRET, "secrets")


def _registries(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.REGISTRY, "Image registry credentials.")
    create = leaf(
        verbs,
        "create",
        "Store the credentials nodes pull images from a registry with.",
        actions.creator(actions.REGISTRY, actions.registry_body),
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument("--address", required=True, help="registry host, e.g. registry.example.com")
    create.add_argument("--username", required=True)
    password = create.add_mutually_exclusive_group(required=True)
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    password.add_argument("--password", help="the password (visible to other local users)")
    _described(create)
    _read_verbs(verbs, leaf, actions.REGISTRY, "registries")


def _certificates(resources: Subparsers, leaf: Leaf) -> None:
    verbs = _resource(resources, actions.CERTIFICATE, "TLS certificates mounted into apps.")
    create = leaf(
        verbs,
        "create",
        "Upload a certificate and its private key (PEM); the key is never shown again.",
        actions.creator(actions.CERTIFICATE, actions.certificate_body),
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument("--cert", required=True, metavar="FILE", help="PEM certificate (chain)")
    create.add_argument("--key", required=True, metavar="FILE", help="PEM private key")
    _described(create)
    _read_verbs(verbs, leaf, actions.CERTIFICATE, "certificates")


def _objects(resources: Subparsers, leaf: Leaf) -> None:
    summary = "Files in the cloud's object store (configurations' object items)."
    parser = resources.add_parser("object", help=summary, description=summary)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs", required=True)
    upload = leaf(verbs, "upload", "Upload a file as BUCKET/NAME.", actions.object_upload)
    upload.add_argument("object", metavar="BUCKET/NAME")
    upload.add_argument("file", metavar="FILE")
    listing = leaf(
        verbs, "list", "List the buckets, or the objects of one.", actions.object_listing
    )
    listing.add_argument("bucket", metavar="BUCKET", nargs="?", default=None)
    delete = leaf(
        verbs, "delete", "Delete an object no configuration names.", actions.object_delete
    )
    delete.add_argument("object", metavar="BUCKET/NAME")
