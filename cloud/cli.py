"""Command line of `baetyl-cloud`, the cloud management suite server: its parser and `main`.

The option values are parsed by `cli_types`, turned into settings by `cli_settings`. Every
default is the settings dataclass's own (cloud.settings); `--help` quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from agent.contracts.version import VERSION
from cloud import cli_settings, cli_types, kube_manifest, logs
from cloud.broker.managed import BrokerError
from cloud.errors import CloudError
from cloud.kube_manifest import CloudManifestSettings
from cloud.pki.ca import PKIError
from cloud.plugins import PluginError
from cloud.secretbox import SecretBoxError
from cloud.serve import serve
from cloud.serve_broker import BROKER_REPLICA, BrokerServeSettings, serve_broker
from cloud.services import tokens
from cloud.services.bootstrap import prepare_data_dir
from cloud.settings import (
    DEFAULT_AGENT_IMAGE,
    DEFAULT_AUTH,
    DEFAULT_SIGNER,
    DIRECTORY_STORE,
    S3_STORE,
    BridgeSettings,
    CloudSettings,
    InstallSettings,
    ManagedBrokerSettings,
    ObjectSettings,
    QuotaDefaults,
)
from cloud.store.db import StoreError, close_store, open_store

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Settings = TypeVar("Settings", bound=DataclassInstance)


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
        type=cli_types.listen,
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
        type=cli_types.listen,
        metavar="HOST:PORT",
        help="where the managed broker listens for nodes "
        f"(default {ManagedBrokerSettings.host}:{ManagedBrokerSettings.port})",
    )
    mqtt.add_argument(
        "--mqtt-url",
        type=cli_types.mqtt_url,
        metavar="mqtts://HOST:PORT",
        help="the broker's TLS listener",
    )
    mqtt.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="CA of the broker certificate")
    mqtt.add_argument(
        "--mqtt-cert", type=Path, metavar="FILE", help="this replica's client certificate"
    )
    mqtt.add_argument("--mqtt-key", type=Path, metavar="FILE", help="its private key")
    mqtt.add_argument(
        "--mqtt-replica",
        type=cli_types.replica,
        metavar="NAME",
        help="replica name; its certificate's CN is baetyl-cloud:NAME "
        f"(default {BridgeSettings.replica})",
    )
    mqtt.add_argument(
        "--mqtt-keepalive",
        type=cli_types.bounded(5, 3600, integer=True),
        metavar="SECONDS",
        help=f"MQTT keepalive of the cloud's own connection (default {BridgeSettings.keepalive})",
    )
    mqtt.add_argument(
        "--mqtt-rate-limit",
        type=cli_types.bounded(0.1, 100_000),
        metavar="N",
        help="messages per second one node may send; more are rejected with 429 "
        f"(default {BridgeSettings.max_messages_per_second:g})",
    )
    mqtt.add_argument(
        "--command-timeout",
        type=cli_types.bounded(0.1, 300),
        metavar="SECONDS",
        help="how long a REST call waits for a node to answer, e.g. for logs "
        f"(default {CloudSettings.command_timeout:g})",
    )
    _install_flags(serve_cmd)
    _object_flags(serve_cmd)
    _plugin_flags(serve_cmd)
    serve_cmd.add_argument(
        "--max-nodes",
        type=cli_types.count,
        metavar="N",
        help="default maxNodeCount quota per namespace "
        f"(0 = unlimited; default {QuotaDefaults.max_node_count})",
    )
    serve_cmd.add_argument(
        "--max-apps",
        type=cli_types.count,
        metavar="N",
        help="default maxAppCount quota per namespace "
        f"(0 = unlimited; default {QuotaDefaults.max_app_count})",
    )

    broker_cmd = commands.add_parser(
        "broker",
        help="run only the broker, for replicas that run apart (Kubernetes)",
        description="Run the managed Mosquitto (mutual TLS, ACL, node-limits plugin) without a "
        "REST API, for cloud replicas started elsewhere with `serve --mqtt-url`: every --replica "
        "is let in as baetyl-cloud:NAME, and the deny list and revoked certificates are read "
        "from the shared database every --sync-interval (docs/kubernetes.md).",
    )
    _data_and_db(broker_cmd)
    broker_cmd.add_argument(
        "--listen",
        type=cli_types.listen,
        metavar="HOST:PORT",
        help=f"where the broker listens (default {ManagedBrokerSettings.host}:"
        f"{ManagedBrokerSettings.port})",
    )
    broker_cmd.add_argument(
        "--server-name",
        type=cli_types.server_name,
        action="append",
        default=[],
        metavar="NAME",
        help="a name or address clients dial, added to the broker certificate (repeatable)",
    )
    broker_cmd.add_argument(
        "--replica",
        type=cli_types.replica,
        action="append",
        required=True,
        metavar="NAME",
        help="a cloud replica's name (its certificate's CN is baetyl-cloud:NAME; repeatable)",
    )
    broker_cmd.add_argument(
        "--sync-interval",
        type=cli_types.bounded(0.5, 300),
        default=BrokerServeSettings.sync_interval,
        metavar="SECONDS",
        help="how often the deny list and revocations are read from the database "
        f"(default {BrokerServeSettings.sync_interval:g})",
    )

    manifest_cmd = commands.add_parser(
        "kube-manifest",
        help="print the manifests that run the cloud on Kubernetes",
        description="Print the Kubernetes manifests of the cloud (broker, REST replicas, "
        "Services, Secrets) as one YAML stream for `kubectl apply -f -` "
        "(docs/kubernetes.md, deploy/kubernetes/cloud/).",
    )
    manifest_cmd.add_argument(
        "--public-host",
        required=True,
        metavar="HOST",
        help="the address nodes and users reach the NodePorts at (a node's address or name)",
    )
    manifest_cmd.add_argument(
        "--keys-dir",
        type=Path,
        metavar="DIR",
        help="where the CA, secret.key and the replicas' certificates are kept (created when "
        "missing, reused after: back it up); with --db, the Secrets are printed too",
    )
    manifest_cmd.add_argument(
        "--db",
        type=cli_types.db_url,
        default=os.environ.get(kube_manifest.DB_ENV),
        metavar="URL",
        help=f"the PostgreSQL URL the replicas share (default ${kube_manifest.DB_ENV})",
    )
    manifest_cmd.add_argument(
        "--replicas",
        type=cli_types.bounded(1, 32, integer=True),
        default=CloudManifestSettings.replicas,
        metavar="N",
        help=f"REST API replicas (default {CloudManifestSettings.replicas})",
    )
    manifest_cmd.add_argument(
        "--namespace",
        default=CloudManifestSettings.namespace,
        help=f"the Kubernetes namespace (default {CloudManifestSettings.namespace})",
    )
    manifest_cmd.add_argument(
        "--image",
        default=CloudManifestSettings.image,
        help=f"the cloud image (default {CloudManifestSettings.image})",
    )
    manifest_cmd.add_argument(
        "--rest-node-port",
        type=cli_types.bounded(30000, 32767, integer=True),
        default=CloudManifestSettings.rest_node_port,
        metavar="PORT",
        help=f"the REST API's NodePort (default {CloudManifestSettings.rest_node_port})",
    )
    manifest_cmd.add_argument(
        "--mqtt-node-port",
        type=cli_types.bounded(30000, 32767, integer=True),
        default=CloudManifestSettings.mqtt_node_port,
        metavar="PORT",
        help=f"the broker's NodePort (default {CloudManifestSettings.mqtt_node_port})",
    )
    manifest_cmd.add_argument(
        "--init-url",
        type=cli_types.init_url,
        metavar="URL",
        help="the address installing nodes use (default http://PUBLIC-HOST:REST-NODE-PORT)",
    )
    manifest_cmd.add_argument(
        "--node-mqtt-url",
        type=cli_types.node_mqtt_url,
        metavar="mqtts://HOST:PORT",
        help="the broker address given to nodes (default mqtts://PUBLIC-HOST:MQTT-NODE-PORT)",
    )
    manifest_cmd.add_argument(
        "--agent-image",
        metavar="IMAGE",
        help=f"the agent image of the install manifest (default {DEFAULT_AGENT_IMAGE}:VERSION)",
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


def _object_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "object store", "files uploaded for configurations' object items (docs/functions.md)"
    )
    group.add_argument(
        "--object-max-bytes",
        type=cli_types.bounded(1, 2**40, integer=True),
        metavar="BYTES",
        help=f"the largest object an upload may store (default {ObjectSettings.max_bytes})",
    )
    group.add_argument(
        "--object-url-ttl",
        type=cli_types.bounded(60, 7 * 86400),
        metavar="SECONDS",
        help="how long the download URL a node is given for an object stays valid "
        f"(default {ObjectSettings.url_ttl:g})",
    )
    group.add_argument(
        "--s3-bucket",
        metavar="NAME",
        help="keep objects in this bucket of S3-compatible storage instead of DATA_DIR/objects "
        "(needs the s3 extra; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws)",
    )
    group.add_argument(
        "--s3-endpoint",
        type=cli_types.init_url,
        metavar="URL",
        help="the S3-compatible service (default: AWS); e.g. a MinIO or Ceph gateway",
    )
    group.add_argument("--s3-region", metavar="REGION", help="the region to sign for (us-east-1)")
    group.add_argument(
        "--s3-virtual-host",
        action="store_true",
        help="address the bucket as a host name (bucket.host) rather than in the path",
    )


def _plugin_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "plug-ins",
        "which installed plug-in implements each plug-in point, by its entry-point name "
        "(docs/plugins.md)",
    )
    group.add_argument(
        "--auth",
        metavar="NAME",
        help=f"who calls the REST API (group baetyl_py.plugins.auth; default {DEFAULT_AUTH})",
    )
    group.add_argument(
        "--object-store",
        metavar="NAME",
        help="where objects are kept (group baetyl_py.plugins.object_storage; default "
        f"{S3_STORE} with --s3-bucket, else {DIRECTORY_STORE})",
    )
    group.add_argument(
        "--pki-signer",
        metavar="NAME",
        help="what signs node certificates (group baetyl_py.plugins.pki_signer; default "
        f"{DEFAULT_SIGNER})",
    )


def _install_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "online installation",
        "what installing nodes are told and given (docs/install.md, docs/operations.md)",
    )
    group.add_argument(
        "--init-url",
        type=cli_types.init_url,
        metavar="URL",
        help="the address nodes reach this REST API at (default http://LISTEN-HOST:PORT; "
        "required when --listen is 0.0.0.0 or ::)",
    )
    group.add_argument(
        "--node-mqtt-url",
        type=cli_types.node_mqtt_url,
        metavar="mqtts://HOST:PORT",
        help="the broker address given to nodes (default: the --mqtt-listen address of the "
        "managed broker, or --mqtt-url; required when the broker listens on 0.0.0.0 or ::)",
    )
    group.add_argument(
        "--install-token-ttl",
        type=cli_types.bounded(60, 7 * 86400),
        metavar="SECONDS",
        help=f"how long an install token stays valid (default {InstallSettings.token_ttl:g})",
    )
    group.add_argument(
        "--node-cert-days",
        type=cli_types.bounded(1, 3650, integer=True),
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
        type=cli_types.db_url,
        default=os.environ.get(kube_manifest.DB_ENV),
        metavar="URL",
        help=f"database URL (default ${kube_manifest.DB_ENV}, else sqlite in DIR/cloud.db; "
        "postgres://… for PostgreSQL)",
    )


def _broker_settings(args: argparse.Namespace) -> BrokerServeSettings:
    settings = CloudSettings(data_dir=args.data_dir, db_url=args.db)
    broker = cli_settings.given(
        ManagedBrokerSettings(server_names=tuple(args.server_name)),
        **cli_settings.address(args.listen),
    )
    broker = dataclasses.replace(
        broker, bridge=dataclasses.replace(broker.bridge, replica=BROKER_REPLICA)
    )
    return BrokerServeSettings(
        data_dir=args.data_dir,
        db_url=settings.database_url,
        broker=broker,
        replicas=tuple(dict.fromkeys(args.replica)),
        sync_interval=args.sync_interval,
    )


def _print_manifest(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        settings = CloudManifestSettings(
            public_host=args.public_host,
            replicas=args.replicas,
            namespace=args.namespace,
            image=args.image,
            rest_node_port=args.rest_node_port,
            mqtt_node_port=args.mqtt_node_port,
            init_url=args.init_url,
            node_mqtt_url=args.node_mqtt_url,
            agent_image=args.agent_image,
        )
        if (args.keys_dir is None) != (args.db is None):
            parser.error("--keys-dir and --db go together (both print the Secrets)")
        keys = None
        if args.keys_dir is not None:
            os.umask(0o077)
            keys = kube_manifest.load_keys(args.keys_dir, settings.replica_names)
        text = kube_manifest.render(settings, keys=keys, db_url=args.db)
    except kube_manifest.ManifestError as exc:
        parser.error(str(exc))
    sys.stdout.write(text)
    return 0


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
            settings, managed = cli_settings.serve_settings(parser, args)
            asyncio.run(serve(settings, managed=managed))
            return 0
        if args.command == "broker":
            os.umask(0o077)
            asyncio.run(serve_broker(_broker_settings(args)))
            return 0
        if args.command == "kube-manifest":
            return _print_manifest(parser, args)
        return asyncio.run(_create_token(args))
    except (
        StoreError,
        SecretBoxError,
        CloudError,
        cli_settings.MqttConfigError,
        BrokerError,
        PKIError,
        PluginError,
        OSError,
    ) as exc:
        sys.stderr.write(f"baetyl-cloud: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
