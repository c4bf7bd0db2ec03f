"""The cloud's settings: one typed tree, built and validated once from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.contracts.shadow import DEFAULT_LIMITS, ShadowLimits
from agent.contracts.version import VERSION
from cloud.objects.s3 import S3Settings


@dataclass(frozen=True)
class QuotaDefaults:
    """Per-namespace limits used when a namespace has no quota row of its own (0 = unlimited)."""

    max_node_count: int = 0
    max_app_count: int = 0


@dataclass(frozen=True)
class BridgeSettings:
    """This replica's MQTT bridge, whichever broker it talks to (managed or external).

    Attributes:
        replica: this replica's name: its client certificate's CN is `baetyl-cloud:<replica>`,
            and it is the MQTT client id.
        keepalive: MQTT keepalive in seconds.
        max_messages_per_second: per node; messages beyond it are rejected with 429.
    """

    replica: str = "cloud-0"
    keepalive: int = 30
    max_messages_per_second: float = 20.0


@dataclass(frozen=True)
class MqttSettings:
    """How the cloud reaches its MQTT broker (mutual TLS, DESIGN §10).

    Attributes:
        host, port: the broker's TLS listener.
        ca_file: CA that signed the broker's server certificate (the cloud CA).
        cert_file, key_file: this replica's client certificate, CN `baetyl-cloud:<replica>`.
        bridge: who this replica is on the broker and how its bridge behaves.
    """

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    bridge: BridgeSettings = field(default_factory=BridgeSettings)


@dataclass(frozen=True)
class ManagedBrokerSettings:
    """The Mosquitto that `baetyl-cloud serve` runs and supervises itself (DESIGN §11).

    Attributes:
        host, port: where it listens for nodes (and this replica's bridge).
        server_names: extra names or addresses nodes dial; the broker certificate covers them
            (besides `host`, `localhost` and `127.0.0.1`).
        bridge: this replica's bridge, which the broker lets in as its cloud user.
    """

    host: str = "127.0.0.1"
    port: int = 8883
    server_names: tuple[str, ...] = ()
    bridge: BridgeSettings = field(default_factory=BridgeSettings)


UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared, never bound
"""Listen addresses that say nothing about the address clients should dial."""
DEFAULT_AGENT_IMAGE = "baetyl-py/agent"
"""The agent image's name; the tag is the cloud's VERSION (see InstallSettings.agent_image)."""


@dataclass(frozen=True)
class InstallSettings:
    """The online installer and node activation (DESIGN §10, docs/install.md).

    Attributes:
        init_url: the cloud address edge nodes use for the installer and activation
            (`http(s)://host:port`, no trailing slash); None when it cannot be guessed (the
            REST API listens on every address), and then the install routes say to set it.
        node_mqtt_url: the broker address given to nodes (`mqtts://host:port`); None when it
            cannot be guessed or there is no broker.
        token_ttl: lifetime of an install token in seconds.
        node_cert_days: validity of the client certificates signed for nodes.
        dist_dir: where the agent wheel (`baetyl_py-*.whl`) served to nodes lies; None means
            `DATA_DIR/dist`.
        agent_image: the container image of the agent in the Kubernetes manifest.
    """

    init_url: str | None = None
    node_mqtt_url: str | None = None
    token_ttl: float = 3600.0
    node_cert_days: int = 365
    dist_dir: Path | None = None
    agent_image: str | None = None


@dataclass(frozen=True)
class ObjectSettings:
    """The cloud's object store (configurations' object items, DESIGN §7).

    Attributes:
        max_bytes: the largest object an upload may store.
        url_ttl: how long a download URL served to a node stays valid, in seconds.
        s3: keep the objects in S3-compatible storage instead of `DATA_DIR/objects` (so that
            every replica sees them); None: the data directory.
    """

    max_bytes: int = 512 * 1024 * 1024
    url_ttl: float = 6 * 3600.0
    s3: S3Settings | None = None


DEFAULT_AUTH = "token"
"""The built-in authentication: bearer tokens stored hashed (DESIGN §6)."""
DIRECTORY_STORE = "directory"
"""The built-in object store in `DATA_DIR/objects`."""
S3_STORE = "s3"
"""The built-in object store on S3-compatible storage (`ObjectSettings.s3`)."""
DEFAULT_SIGNER = "ca"
"""The built-in PKI signer: the cloud CA of `DATA_DIR/pki`."""


@dataclass(frozen=True)
class PluginSettings:
    """The installed plug-in chosen for each plug-in point, by its entry-point name
    (cloud.plugins, docs/plugins.md).

    Attributes:
        auth: who calls the REST API (group `baetyl_py.plugins.auth`).
        object_storage: where objects are kept (group `baetyl_py.plugins.object_storage`);
            None: `s3` when `ObjectSettings.s3` is set, else `directory`.
        pki_signer: what signs node certificates (group `baetyl_py.plugins.pki_signer`).
    """

    auth: str = DEFAULT_AUTH
    object_storage: str | None = None
    pki_signer: str = DEFAULT_SIGNER


@dataclass(frozen=True)
class CloudSettings:
    """Everything `baetyl-cloud serve` runs with.

    Attributes:
        data_dir: holds `cloud.db` (SQLite default), `admin.token` and `secret.key`.
        db_url: database URL; None means SQLite in `data_dir/cloud.db`.
        host, port: where the REST API listens.
        mqtt: the broker to talk to edge nodes through; None runs the REST API only.
        quotas: default namespace quotas.
        shadow_limits: size, depth and key limits of shadow sections.
        report_interval: the agents' report interval in seconds; a node whose last report is
            older than three of these counts as offline when no presence is known.
        command_timeout: how long a REST call waits for a node to answer a command (logs).
        install: the online installer and node activation.
        objects: the object store.
        plugins: the plug-in chosen for each plug-in point.
    """

    data_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 9004
    mqtt: MqttSettings | None = None
    quotas: QuotaDefaults = field(default_factory=QuotaDefaults)
    shadow_limits: ShadowLimits = DEFAULT_LIMITS
    report_interval: float = 20.0
    command_timeout: float = 10.0
    install: InstallSettings = field(default_factory=InstallSettings)
    objects: ObjectSettings = field(default_factory=ObjectSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)

    @property
    def database_url(self) -> str:
        """The database URL actually used."""
        return self.db_url or f"sqlite://{self.data_dir / 'cloud.db'}"

    @property
    def object_storage(self) -> str:
        """The object storage plug-in used: `plugins.object_storage`, else as `objects` says."""
        if self.plugins.object_storage is not None:
            return self.plugins.object_storage
        return DIRECTORY_STORE if self.objects.s3 is None else S3_STORE

    @property
    def objects_dir(self) -> Path:
        """`DATA_DIR/objects`: the embedded object store."""
        return self.data_dir / "objects"

    @property
    def pki_dir(self) -> Path:
        """`DATA_DIR/pki`: the cloud CA (and, with the managed broker, its certificates)."""
        return self.data_dir / "pki"

    @property
    def init_url(self) -> str | None:
        """The cloud address nodes use: `install.init_url`, else this server's listen address.

        None when the server listens on every address: which of them nodes can reach is then
        unknown (the command line refuses to start that way without `--init-url`).
        """
        if self.install.init_url is not None:
            return self.install.init_url
        return None if self.host in UNSPECIFIED_HOSTS else f"http://{_host(self.host)}:{self.port}"

    @property
    def node_mqtt_url(self) -> str | None:
        """The broker address given to nodes: `install.node_mqtt_url`, else the bridge's broker."""
        if self.install.node_mqtt_url is not None:
            return self.install.node_mqtt_url
        if self.mqtt is None or self.mqtt.host in UNSPECIFIED_HOSTS:
            return None
        return f"mqtts://{_host(self.mqtt.host)}:{self.mqtt.port}"

    @property
    def agent_image(self) -> str:
        """The agent's container image in the Kubernetes manifest."""
        return self.install.agent_image or f"{DEFAULT_AGENT_IMAGE}:{VERSION}"

    @property
    def dist_dir(self) -> Path:
        """Where the agent wheel served to installing nodes is looked for."""
        return self.install.dist_dir or self.data_dir / "dist"


def _host(host: str) -> str:
    """A host as it goes into a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host
