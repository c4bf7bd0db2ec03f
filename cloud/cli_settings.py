"""`baetyl-cloud serve`'s options → its settings: each default is the settings dataclass's own
(cloud.settings): an option left out is None and keeps it, an option given replaces it (`given`).
Usage errors exit through the parser; the external broker's TLS files are checked here, before
anything starts, and raise MqttConfigError.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import ssl
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from agent.contracts.kit.mqtt_link import tls_context
from cloud import cli_types
from cloud.objects.s3 import S3Settings
from cloud.plugins import AUTH, OBJECT_STORAGE, PKI_SIGNER, PluginError
from cloud.settings import (
    S3_STORE,
    UNSPECIFIED_HOSTS,
    BridgeSettings,
    CloudSettings,
    InstallSettings,
    ManagedBrokerSettings,
    MqttSettings,
    ObjectSettings,
    PluginSettings,
    QuotaDefaults,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Settings = TypeVar("Settings", bound=DataclassInstance)


class MqttConfigError(Exception):
    """The MQTT flags name files that cannot be used."""


def given(base: Settings, **options: Any) -> Settings:
    """`base` with the options the command line gave; one left out (None) keeps its default."""
    return dataclasses.replace(base, **{k: v for k, v in options.items() if v is not None})


def address(listen: tuple[str, int] | None) -> dict[str, Any]:
    """A `--listen`-style option as the `host` and `port` fields it sets (none when not given)."""
    return {} if listen is None else {"host": listen[0], "port": listen[1]}


def serve_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[CloudSettings, ManagedBrokerSettings | None]:
    """What `serve` runs with, and its managed broker's settings (None with an external one or
    none at all); a usage error exits through `parser`, unusable TLS files raise MqttConfigError.
    """
    bridge = given(
        BridgeSettings(),
        replica=args.mqtt_replica,
        keepalive=args.mqtt_keepalive,
        max_messages_per_second=args.mqtt_rate_limit,
    )
    mqtt = mqtt_settings(parser, args, bridge)
    managed = None
    if mqtt is None and not args.no_mqtt:
        managed = given(ManagedBrokerSettings(bridge=bridge), **address(args.mqtt_listen))
    quotas = given(QuotaDefaults(), max_node_count=args.max_nodes, max_app_count=args.max_apps)
    settings = given(
        CloudSettings(data_dir=args.data_dir, db_url=args.db, mqtt=mqtt, quotas=quotas),
        **address(args.listen),
        command_timeout=args.command_timeout,
    )
    install = install_settings(parser, args, settings, managed)
    if managed is not None:
        managed = dataclasses.replace(managed, server_names=broker_names(install))
    objects = given(
        ObjectSettings(),
        max_bytes=args.object_max_bytes,
        url_ttl=args.object_url_ttl,
        s3=s3_settings(parser, args),
    )
    settings = dataclasses.replace(
        settings, install=install, objects=objects, plugins=plugin_settings(parser, args)
    )
    checked_plugins(parser, settings)
    return settings, managed


def plugin_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> PluginSettings:
    """The plug-ins named by `--auth`, `--object-store` and `--pki-signer`."""
    if args.object_store is not None and args.object_store != S3_STORE and args.s3_bucket:
        parser.error(
            f"--s3-* options configure the {S3_STORE} object store, not {args.object_store!r}"
        )
    if args.object_store == S3_STORE and args.s3_bucket is None:
        parser.error(f"--object-store {S3_STORE} needs --s3-bucket")
    return given(
        PluginSettings(),
        auth=args.auth,
        object_storage=args.object_store,
        pki_signer=args.pki_signer,
    )


def checked_plugins(parser: argparse.ArgumentParser, settings: CloudSettings) -> None:
    """Exit through `parser` when a chosen plug-in is not installed, before anything starts
    (its message lists the installed ones); making them is left to the start."""
    chosen = settings.plugins
    for point, name in (
        (AUTH, chosen.auth),
        (OBJECT_STORAGE, settings.object_storage),
        (PKI_SIGNER, chosen.pki_signer),
    ):
        try:
            point.check(name)
        except PluginError as exc:
            parser.error(str(exc))


def s3_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> S3Settings | None:
    """The S3 object store from `--s3-*` (None without `--s3-bucket`); the s3 extra is needed."""
    if args.s3_bucket is None:
        if args.s3_endpoint or args.s3_region or args.s3_virtual_host:
            parser.error("--s3-endpoint/--s3-region/--s3-virtual-host go with --s3-bucket")
        return None
    if importlib.util.find_spec("boto3") is None:
        parser.error("--s3-bucket needs the s3 extra: pip install 'baetyl-py[cloud,s3]'")
    return given(
        S3Settings(bucket=args.s3_bucket, path_style=not args.s3_virtual_host),
        endpoint_url=args.s3_endpoint,
        region=args.s3_region,
    )


def install_settings(
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
        node_mqtt_url = f"mqtts://{cli_types.url_host(settings.mqtt.host)}:{settings.mqtt.port}"
    elif node_mqtt_url is None and managed is not None:
        if managed.host in UNSPECIFIED_HOSTS:
            parser.error(
                f"--mqtt-listen {managed.host}:{managed.port} listens on every address, so the "
                "cloud cannot tell nodes which one to dial: give --node-mqtt-url "
                f"mqtts://HOST:{managed.port}"
            )
        node_mqtt_url = f"mqtts://{cli_types.url_host(managed.host)}:{managed.port}"
    return given(
        InstallSettings(
            init_url=init_url,
            node_mqtt_url=node_mqtt_url,
            dist_dir=args.dist_dir,
            agent_image=args.agent_image,
        ),
        token_ttl=args.install_token_ttl,
        node_cert_days=args.node_cert_days,
    )


def mqtt_settings(
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


def broker_names(install: InstallSettings) -> tuple[str, ...]:
    """The host nodes dial, so the managed broker's certificate covers it."""
    if install.node_mqtt_url is None:
        return ()
    host = urlsplit(install.node_mqtt_url).hostname
    return (host,) if host else ()
