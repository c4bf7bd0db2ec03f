"""Command line of `baetyl-cloud`, the cloud management suite server.

Every default is the settings dataclass's own (cloud.settings): an option left out is None and
keeps it, an option given replaces it (`_given`); `--help` quotes the dataclass defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from agent.contracts.kit.mqtt_link import tls_context
from agent.contracts.version import VERSION
from cloud import logs
from cloud.broker.managed import BrokerError
from cloud.errors import CloudError
from cloud.pki.ca import PKIError
from cloud.secretbox import SecretBoxError
from cloud.serve import serve
from cloud.services import tokens
from cloud.services.bootstrap import prepare_data_dir
from cloud.settings import (
    DEFAULT_AGENT_IMAGE,
    UNSPECIFIED_HOSTS,
    BridgeSettings,
    CloudSettings,
    InstallSettings,
    ManagedBrokerSettings,
    MqttSettings,
    QuotaDefaults,
)
from cloud.store.db import StoreError, check_url, close_store, open_store

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Settings = TypeVar("Settings", bound=DataclassInstance)


def _given(base: Settings, **options: Any) -> Settings:
    """`base` with the options the command line gave; one left out (None) keeps its default."""
    return dataclasses.replace(base, **{k: v for k, v in options.items() if v is not None})


def _address(listen: tuple[str, int] | None) -> dict[str, Any]:
    """A `--listen`-style option as the `host` and `port` fields it sets (none when not given)."""
    return {} if listen is None else {"host": listen[0], "port": listen[1]}


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _db_url(text: str) -> str:
    try:
        return check_url(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _mqtt_url(text: str) -> tuple[str, int]:
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


def _init_url(text: str) -> str:
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


def _node_mqtt_url(text: str) -> str:
    host, port = _mqtt_url(text)
    return f"mqtts://{_url_host(host)}:{port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _replica(text: str) -> str:
    if not text or not all(c.isalnum() or c in "-_." for c in text):
        raise argparse.ArgumentTypeError(
            f"a replica name uses letters, digits, '-', '_' and '.', got {text!r}"
        )
    return text


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _bounded(low: float, high: float, *, integer: bool = False) -> Callable[[str], float]:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="baetyl-cloud",
        description=(
            "The Baetyl-Py cloud management suite: REST API over a Tortoise store, node shadows "
            "exchanged with edge agents over MQTT, PKI and the online installer."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the REST API server")
    _data_and_db(serve_cmd)
    serve_cmd.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help=f"address of the REST API (default {CloudSettings.host}:{CloudSettings.port})",
    )
    serve_cmd.add_argument(
        "--no-mqtt",
        action="store_true",
        help="run the REST API only, without the MQTT side",
    )
    mqtt = serve_cmd.add_argument_group(
        "MQTT broker",
        "by default the cloud runs and supervises its own Mosquitto (--mqtt-listen); "
        "--mqtt-url uses an external broker over mutual TLS instead (docs/operations.md)",
    )
    mqtt.add_argument(
        "--mqtt-listen",
        type=_listen,
        metavar="HOST:PORT",
        help="where the managed broker listens for nodes "
        f"(default {ManagedBrokerSettings.host}:{ManagedBrokerSettings.port})",
    )
    mqtt.add_argument(
        "--mqtt-url", type=_mqtt_url, metavar="mqtts://HOST:PORT", help="the broker's TLS listener"
    )
    mqtt.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="CA of the broker certificate")
    mqtt.add_argument(
        "--mqtt-cert", type=Path, metavar="FILE", help="this replica's client certificate"
    )
    mqtt.add_argument("--mqtt-key", type=Path, metavar="FILE", help="its private key")
    mqtt.add_argument(
        "--mqtt-replica",
        type=_replica,
        metavar="NAME",
        help="replica name; its certificate's CN is baetyl-cloud:NAME "
        f"(default {BridgeSettings.replica})",
    )
    mqtt.add_argument(
        "--mqtt-keepalive",
        type=_bounded(5, 3600, integer=True),
        metavar="SECONDS",
        help=f"MQTT keepalive of the cloud's own connection (default {BridgeSettings.keepalive})",
    )
    mqtt.add_argument(
        "--mqtt-rate-limit",
        type=_bounded(0.1, 100_000),
        metavar="N",
        help="messages per second one node may send; more are rejected with 429 "
        f"(default {BridgeSettings.max_messages_per_second:g})",
    )
    mqtt.add_argument(
        "--command-timeout",
        type=_bounded(0.1, 300),
        metavar="SECONDS",
        help="how long a REST call waits for a node to answer, e.g. for logs "
        f"(default {CloudSettings.command_timeout:g})",
    )
    _install_flags(serve_cmd)
    serve_cmd.add_argument(
        "--max-nodes",
        type=_count,
        metavar="N",
        help="default maxNodeCount quota per namespace "
        f"(0 = unlimited; default {QuotaDefaults.max_node_count})",
    )
    serve_cmd.add_argument(
        "--max-apps",
        type=_count,
        metavar="N",
        help="default maxAppCount quota per namespace "
        f"(0 = unlimited; default {QuotaDefaults.max_app_count})",
    )

    token_cmd = commands.add_parser("token", help="manage API tokens")
    token_actions = token_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="create a token and print it")
    _data_and_db(create)
    create.add_argument(
        "--namespace", default="default", help="tenant namespace (created if missing)"
    )
    create.add_argument("--role", choices=["admin", "read"], default="admin")
    create.add_argument("--description", default="", help="what the token is for")
    return parser


def _install_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "online installation",
        "what installing nodes are told and given (docs/install.md, docs/operations.md)",
    )
    group.add_argument(
        "--init-url",
        type=_init_url,
        metavar="URL",
        help="the address nodes reach this REST API at (default http://LISTEN-HOST:PORT; "
        "required when --listen is 0.0.0.0 or ::)",
    )
    group.add_argument(
        "--node-mqtt-url",
        type=_node_mqtt_url,
        metavar="mqtts://HOST:PORT",
        help="the broker address given to nodes (default: the --mqtt-listen address of the "
        "managed broker, or --mqtt-url; required when the broker listens on 0.0.0.0 or ::)",
    )
    group.add_argument(
        "--install-token-ttl",
        type=_bounded(60, 7 * 86400),
        metavar="SECONDS",
        help=f"how long an install token stays valid (default {InstallSettings.token_ttl:g})",
    )
    group.add_argument(
        "--node-cert-days",
        type=_bounded(1, 3650, integer=True),
        metavar="N",
        help="validity of the certificates signed for nodes, in days "
        f"(default {InstallSettings.node_cert_days})",
    )
    group.add_argument(
        "--dist-dir",
        type=Path,
        metavar="DIR",
        help="where the agent wheel served to nodes lies (default DATA_DIR/dist; `make wheel`)",
    )
    group.add_argument(
        "--agent-image",
        metavar="IMAGE",
        help=f"the agent image in the Kubernetes manifest (default {DEFAULT_AGENT_IMAGE}:VERSION)",
    )


def serve_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[CloudSettings, ManagedBrokerSettings | None]:
    """What `serve` runs with, and its managed broker's settings (None with an external one or
    none at all); a usage error exits through `parser`, unusable TLS files raise MqttConfigError.
    """
    bridge = _given(
        BridgeSettings(),
        replica=args.mqtt_replica,
        keepalive=args.mqtt_keepalive,
        max_messages_per_second=args.mqtt_rate_limit,
    )
    mqtt = _mqtt_settings(parser, args, bridge)
    managed = None
    if mqtt is None and not args.no_mqtt:
        managed = _given(ManagedBrokerSettings(bridge=bridge), **_address(args.mqtt_listen))
    quotas = _given(QuotaDefaults(), max_node_count=args.max_nodes, max_app_count=args.max_apps)
    settings = _given(
        CloudSettings(data_dir=args.data_dir, db_url=args.db, mqtt=mqtt, quotas=quotas),
        **_address(args.listen),
        command_timeout=args.command_timeout,
    )
    install = _install_settings(parser, args, settings, managed)
    if managed is not None:
        managed = dataclasses.replace(managed, server_names=_broker_names(install))
    return dataclasses.replace(settings, install=install), managed


def _install_settings(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    settings: CloudSettings,
    managed: ManagedBrokerSettings | None,
) -> InstallSettings:
    """The installer settings; refuses to guess an address from a wildcard listen address."""
    init_url = args.init_url or settings.init_url
    if init_url is None:
        parser.error(
            f"--listen {settings.host}:{settings.port} listens on every address, so the cloud "
            "cannot tell installing nodes where to reach it: give --init-url http://HOST:PORT"
        )
    node_mqtt_url = args.node_mqtt_url
    if node_mqtt_url is None and settings.mqtt is not None:
        node_mqtt_url = f"mqtts://{_url_host(settings.mqtt.host)}:{settings.mqtt.port}"
    elif node_mqtt_url is None and managed is not None:
        if managed.host in UNSPECIFIED_HOSTS:
            parser.error(
                f"--mqtt-listen {managed.host}:{managed.port} listens on every address, so the "
                "cloud cannot tell nodes which one to dial: give --node-mqtt-url "
                f"mqtts://HOST:{managed.port}"
            )
        node_mqtt_url = f"mqtts://{_url_host(managed.host)}:{managed.port}"
    return _given(
        InstallSettings(
            init_url=init_url,
            node_mqtt_url=node_mqtt_url,
            dist_dir=args.dist_dir,
            agent_image=args.agent_image,
        ),
        token_ttl=args.install_token_ttl,
        node_cert_days=args.node_cert_days,
    )


def _data_and_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="holds cloud.db (SQLite), admin.token and secret.key",
    )
    parser.add_argument(
        "--db",
        type=_db_url,
        metavar="URL",
        help="database URL (default sqlite in DIR/cloud.db; postgres://… for PostgreSQL)",
    )


async def _create_token(args: argparse.Namespace) -> int:
    settings = CloudSettings(data_dir=args.data_dir, db_url=args.db)
    prepare_data_dir(settings.data_dir)
    await open_store(settings.database_url)
    try:
        _, plain = await tokens.issue(args.namespace, args.role, description=args.description)
    finally:
        await close_store()
    sys.stdout.write(plain + "\n")
    return 0


def _mqtt_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace, bridge: BridgeSettings
) -> MqttSettings | None:
    """The external broker settings from the serve flags (None with --no-mqtt), checked."""
    tls = {"--mqtt-ca": args.mqtt_ca, "--mqtt-cert": args.mqtt_cert, "--mqtt-key": args.mqtt_key}
    if args.no_mqtt:
        if args.mqtt_url is not None:
            parser.error("--no-mqtt and --mqtt-url exclude each other")
        return None
    if args.mqtt_url is None:
        if any(value is not None for value in tls.values()):
            parser.error("--mqtt-ca/--mqtt-cert/--mqtt-key go with --mqtt-url")
        return None  # the managed broker: main() builds its settings once it runs
    missing = [flag for flag, value in tls.items() if value is None]
    if missing:
        parser.error(f"--mqtt-url needs {', '.join(missing)}")
    host, port = args.mqtt_url
    settings = MqttSettings(
        host=host,
        port=port,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
        bridge=bridge,
    )
    for flag, path in tls.items():
        if not path.is_file():
            raise MqttConfigError(f"{flag} {path}: no such file")
    try:
        tls_context(settings.ca_file, settings.cert_file, settings.key_file)
    except (ssl.SSLError, ValueError) as exc:
        raise MqttConfigError(
            f"--mqtt-ca/--mqtt-cert/--mqtt-key: unusable TLS files: {exc}"
        ) from exc
    return settings


def _broker_names(install: InstallSettings) -> tuple[str, ...]:
    """The host nodes dial, so the managed broker's certificate covers it."""
    if install.node_mqtt_url is None:
        return ()
    host = urlsplit(install.node_mqtt_url).hostname
    return (host,) if host else ()


class MqttConfigError(Exception):
    """The MQTT flags name files that cannot be used."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        if args.command == "serve":
            # Everything the server writes (database, keys, tokens) is for its own user only;
            # the managed broker's files are handed to its account explicitly.
            os.umask(0o077)
            settings, managed = serve_settings(parser, args)
            asyncio.run(serve(settings, managed=managed))
            return 0
        return asyncio.run(_create_token(args))
    except (
        StoreError,
        SecretBoxError,
        CloudError,
        MqttConfigError,
        BrokerError,
        PKIError,
        OSError,
    ) as exc:
        sys.stderr.write(f"baetyl-cloud: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
