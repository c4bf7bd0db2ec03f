"""Render Mosquitto's configuration and ACL files for the platform's mutual-TLS broker (DESIGN §10).

Rendering is pure (settings in, text out) so the shipped `deploy/mosquitto/` files, the broker that
`baetyl-cloud` supervises and the test broker all come from the same two templates.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.contracts import topics
from agent.contracts.names import InvalidName, check_nid
from agent.contracts.shadow import DEFAULT_LIMITS, PRESENCE_MAX_BYTES

CLOUD_USER_PREFIX = "baetyl-cloud:"
# Replica names go into certificate CNs and ACL lines; keep them to a safe, readable alphabet.
_REPLICA_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,49}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_SYSTEM_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_MQTT_USER_FORBIDDEN = frozenset("+#%/")

# The largest messages are the cloud's (NodeLimits holds nodes far lower): `shadow/get/accepted`
# (desired, reported and delta, each at most 128 KiB, plus per-leaf metadata that can outweigh a
# section of many small leaves) and `resources/get/accepted` carrying one configuration of just
# under 4 MiB (agent.contracts.resources), with headroom for the envelope.
DEFAULT_MESSAGE_SIZE_LIMIT = 6 * 1024 * 1024


@dataclass(frozen=True)
class NodeLimits:
    """What the node-limits plugin holds every non-cloud client to (decision #98).

    Mosquitto's size and retain settings are global and must let the cloud's answers through;
    the plugin (`cloud/broker/plugin/node_limits.c`, built by `node_limits_plugin.build`) caps
    nodes instead.
    """

    plugin: Path
    """The built shared object; loaded by the broker's account after it drops privileges."""
    max_payload: int = DEFAULT_LIMITS.node_payload_bytes
    """Largest payload a node may publish (320 KiB: a shadow update of two full sections)."""
    presence_max_payload: int = PRESENCE_MAX_BYTES
    """Largest presence payload; presence is also the only topic a node may retain on."""

    def __post_init__(self) -> None:
        """Refuse a relative path or a limit the plugin would refuse at the broker's start."""
        _check_path("node limits plugin", self.plugin)
        for name in ("max_payload", "presence_max_payload"):
            value = getattr(self, name)
            if not 1 <= value <= 2**32 - 1:
                raise ValueError(f"{name} must be between 1 and {2**32 - 1} bytes, got {value}")


@dataclass(frozen=True)
class MosquittoSettings:
    """Everything that varies between the production broker, the embedded one and the test one.

    Validated on construction: a bad value would otherwise only show as a broker that refuses to
    start, with the reason buried in its log.
    """

    cafile: Path
    """CA certificate clients must be signed by (the cloud CA of `cloud.pki`)."""
    certfile: Path
    """The broker's server certificate (serverAuth, SANs for the names clients dial)."""
    keyfile: Path
    """The server certificate's private key."""
    acl_file: Path
    """ACL rendered by `render_acl`; re-read on SIGHUP."""
    pid_file: Path
    """Where the broker writes its pid (used to send SIGHUP after an ACL change)."""
    log_file: Path
    """Broker log; a file because stdout is block-buffered when redirected."""
    persistence_dir: Path | None = None
    """Directory for the persistence database; None turns persistence off (tests)."""
    crl_file: Path | None = None
    """CRL of the cloud CA (revoked node certificates), re-read on SIGHUP; None = no check. With
    it, a missing or expired CRL makes the broker refuse every client (decision #75)."""
    bind_address: str = "127.0.0.1"
    """Address of the TLS listener; loopback unless the broker must be reachable by nodes."""
    port: int = 8883
    """Port of the TLS listener (8883 is MQTT over TLS)."""
    user: str = "mosquitto"
    """System user the broker drops to when started as root (no effect otherwise)."""
    max_queued_messages: int = 100_000
    """QoS 1/2 messages queued per client beyond those in flight. The default 1000 silently drops
    messages to a slow subscriber, e.g. a cloud replica receiving every node's reports."""
    max_queued_bytes: int = 0
    """Byte limit of that queue; 0 = none (the message count bounds it)."""
    max_inflight_messages: int = 100
    """QoS 1/2 messages in flight per client (Mosquitto's default is 20)."""
    max_connections: int = -1
    """Connections accepted by the listener; -1 = unlimited (the OS file limit still applies)."""
    message_size_limit: int = DEFAULT_MESSAGE_SIZE_LIMIT
    """Largest accepted payload in bytes; larger publishes are dropped by the broker."""
    node_limits: NodeLimits | None = None
    """The node-limits plugin and its limits; None = nodes are bounded by the above alone."""

    def __post_init__(self) -> None:
        """Refuse values that would make a broken or unsafe configuration file."""
        for name in ("cafile", "certfile", "keyfile", "acl_file", "pid_file", "log_file"):
            _check_path(name, getattr(self, name))
        if self.persistence_dir is not None:
            _check_path("persistence_dir", self.persistence_dir)
        if self.crl_file is not None:
            _check_path("crl_file", self.crl_file)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        _check_bind_address(self.bind_address)
        if not _SYSTEM_USER_RE.match(self.user):
            raise ValueError(f"user {self.user!r} is not a valid system user name")
        for name in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_connections < -1 or self.max_connections == 0:
            raise ValueError(
                f"max_connections must be -1 (unlimited) or positive, got {self.max_connections}"
            )
        if self.message_size_limit < 0:
            raise ValueError(f"message_size_limit must be >= 0, got {self.message_size_limit}")


def production_settings() -> MosquittoSettings:
    """The settings of the shipped `deploy/mosquitto/mosquitto.conf`."""
    etc = Path("/etc/baetyl/broker")
    var = Path("/var/lib/baetyl/broker")
    return MosquittoSettings(
        cafile=etc / "ca.pem",
        certfile=etc / "server.pem",
        keyfile=etc / "server.key",
        acl_file=etc / "acl",
        pid_file=var / "mosquitto.pid",
        log_file=var / "mosquitto.log",
        persistence_dir=var / "data",
        crl_file=etc / "crl.pem",
        node_limits=NodeLimits(plugin=etc / "baetyl_node_limits.so"),
        bind_address="0.0.0.0",  # noqa: S104 - nodes connect from other machines
        port=8883,
    )


PRODUCTION_CLOUD_USERS = ("baetyl-cloud:cloud-0",)
"""Cloud users of the shipped ACL: one replica, `cloud-0`."""


def render_config(settings: MosquittoSettings) -> str:
    """Render `mosquitto.conf` for `settings`."""
    if settings.persistence_dir is None:
        persistence = "# No persistence: queued messages and sessions are lost on restart.\n"
        persistence += "persistence false"
    else:
        # Mosquitto joins the location and the file name without a separator: keep the slash.
        persistence = "# Sessions and queued QoS 1 messages survive a broker restart.\n"
        persistence += f"persistence true\npersistence_location {settings.persistence_dir}/"
    if settings.crl_file is None:
        crl = "# No CRL: a deleted node's certificate is shut out by the ACL's deny list alone."
    else:
        crl = (
            "# Revoked certificates (deleted nodes) are refused at the TLS handshake. Mosquitto\n"
            "# re-reads this file on SIGHUP; the cloud rewrites it on every revocation.\n"
            f"crlfile {settings.crl_file}"
        )
    return _template("mosquitto.conf.tmpl").substitute(
        crl=crl,
        node_limits=_node_limits_lines(settings.node_limits),
        user=settings.user,
        pid_file=settings.pid_file,
        log_file=settings.log_file,
        persistence=persistence,
        max_queued_messages=settings.max_queued_messages,
        max_queued_bytes=settings.max_queued_bytes,
        max_inflight_messages=settings.max_inflight_messages,
        message_size_limit=settings.message_size_limit,
        port=settings.port,
        bind_address=settings.bind_address,
        max_connections=settings.max_connections,
        cafile=settings.cafile,
        certfile=settings.certfile,
        keyfile=settings.keyfile,
        acl_file=settings.acl_file,
    )


def _node_limits_lines(limits: NodeLimits | None) -> str:
    if limits is None:
        return (
            "# No node-limits plugin: a node may publish up to message_size_limit and retain on\n"
            "# each of its topics until the cloud deletes it (decision #98)."
        )
    return (
        f"# Nodes (every client but a cloud replica) may publish at most {limits.max_payload} "
        "bytes and may\n"
        f"# retain only a presence of at most {limits.presence_max_payload} bytes; the plugin "
        "refuses anything else\n"
        "# (decision #98). Built by cloud.broker.node_limits_plugin (deploy/mosquitto/README.md).\n"
        f"plugin {limits.plugin}\n"
        f"plugin_opt_cloud_prefix {CLOUD_USER_PREFIX}\n"
        f"plugin_opt_max_payload {limits.max_payload}\n"
        f"plugin_opt_presence_max_payload {limits.presence_max_payload}\n"
        f"plugin_opt_retain_suffix /{topics.Channel.PRESENCE.value}"
    )


def render_acl(*, cloud_users: Iterable[str], denied_nids: Iterable[str] = ()) -> str:
    """Render the ACL: full access for cloud users, nothing for denied nids, own topics for others.

    Raises ValueError naming the bad entry if a cloud user is not `baetyl-cloud:<replica>` or a
    denied entry is not a valid nid; either would otherwise corrupt the file or grant access.
    """
    users = _unique(check_cloud_user(user) for user in cloud_users)
    nids = _unique(_check_denied_nid(nid) for nid in denied_nids)
    cloud_block = "\n".join(f"user {user}\ntopic readwrite #\n" for user in users)
    denied_block = "\n".join(f"user {nid}\ntopic deny #\n" for nid in nids)
    return _template("acl.tmpl").substitute(
        cloud_users=cloud_block or "# (none)\n",
        denied_nids=denied_block or "# (none)\n",
        node_patterns=_node_patterns(),
    )


def _node_patterns() -> str:
    """`pattern write` for each agent → cloud channel, `pattern read` for each cloud → agent one."""
    lines = []
    for channel in topics.Channel:
        access = "write" if channel.direction is topics.Direction.TO_CLOUD else "read"
        lines.append(f"pattern {access} {topics.PREFIX}/%u/{channel.value}")
    return "\n".join(lines)


def check_cloud_user(user: str) -> str:
    """Return `user` if it is a cloud replica identity `baetyl-cloud:<replica>`, else raise."""
    if not isinstance(user, str) or not user.startswith(CLOUD_USER_PREFIX):
        raise ValueError(f"cloud user {user!r} must have the form '{CLOUD_USER_PREFIX}<replica>'")
    replica = user.removeprefix(CLOUD_USER_PREFIX)
    if not _REPLICA_RE.match(replica) or _MQTT_USER_FORBIDDEN.intersection(replica):
        raise ValueError(
            f"cloud user {user!r}: the replica name must be 1-50 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (no spaces, newlines or MQTT wildcards)"
        )
    return user


def _check_denied_nid(nid: str) -> str:
    try:
        return check_nid(nid)
    except InvalidName as exc:
        raise ValueError(f"denied node id {nid!r} is not a valid nid: {exc}") from exc


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_path(name: str, path: Path) -> None:
    text = str(path)
    if not path.is_absolute():
        # The broker may run with another working directory than the one that rendered the file.
        raise ValueError(f"{name} must be an absolute path, got {text!r}")
    if any(char in text for char in "\n\r\0") or text != text.strip():
        raise ValueError(f"{name} {text!r} must not contain newlines or surrounding blanks")


def _check_bind_address(address: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _HOST_RE.match(address):
            raise ValueError(
                f"bind_address {address!r} must be an IP address or a host name"
            ) from None


def _template(name: str) -> string.Template:
    text = resources.files("cloud.broker").joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)
