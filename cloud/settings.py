"""The cloud's settings: one typed tree, built and validated once from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.contracts.shadow import DEFAULT_LIMITS, ShadowLimits


@dataclass(frozen=True)
class QuotaDefaults:
    """Per-namespace limits used when a namespace has no quota row of its own (0 = unlimited)."""

    max_node_count: int = 0
    max_app_count: int = 0


@dataclass(frozen=True)
class MqttSettings:
    """How the cloud reaches its MQTT broker (mutual TLS, DESIGN §10).

    Attributes:
        host, port: the broker's TLS listener.
        ca_file: CA that signed the broker's server certificate (the cloud CA).
        cert_file, key_file: this replica's client certificate, CN `baetyl-cloud:<replica>`.
        replica: this replica's name (the CN suffix); also the MQTT client id.
        share_group: the `$share/<group>/…` name of the request subscriptions. Nodes must not
            know it (docs/decisions.md, "Shared subscriptions"): use a random one in production,
            the same on every replica.
        keepalive: MQTT keepalive in seconds.
        max_messages_per_second: per node; messages beyond it are rejected with 429.
    """

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    replica: str = "cloud-0"
    share_group: str = "baetyl-cloud"
    keepalive: int = 30
    max_messages_per_second: float = 20.0


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

    @property
    def database_url(self) -> str:
        """The database URL actually used."""
        return self.db_url or f"sqlite://{self.data_dir / 'cloud.db'}"
