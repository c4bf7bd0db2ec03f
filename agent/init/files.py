"""The files of a node installation under one prefix: layout, certificates and core.yml.

Everything lives under `--prefix` (default /opt/baetyl), so an installation is one directory:
`etc/baetyl/core.yml`, `var/lib/baetyl/{node,store,run}`, `var/log/baetyl`, `var/run`.
core.yml is written last and only after `agent.core.config` accepted it, so its presence next
to a matching certificate and key marks a complete installation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.contracts import names
from agent.contracts.kit.files import atomic_write
from agent.core.config import (
    ApiConfig,
    ConfigError,
    CoreConfig,
    load_config,
    node_identity,
    parse_config,
)
from agent.init import keys
from agent.init.errors import InitError

DEFAULT_PREFIX = Path("/opt/baetyl")
# The local API core.yml gets unless told otherwise: the agent's own default, written once.
DEFAULT_API_LISTEN: str = ApiConfig.model_fields["listen"].default
# Apps that drop privileges must reach their run directories; the store stays the agent's.
_DIR_MODES = (
    ("etc/baetyl", 0o755),
    ("var/lib/baetyl", 0o755),
    ("var/lib/baetyl/node", 0o700),
    ("var/lib/baetyl/store", 0o700),
    ("var/lib/baetyl/run", 0o755),
    ("var/log/baetyl", 0o750),
    ("var/run", 0o755),
)


@dataclass(frozen=True)
class Layout:
    """Where each file of an installation under `prefix` goes."""

    prefix: Path

    @property
    def config_file(self) -> Path:
        """core.yml, the agent's configuration."""
        return self.prefix / "etc/baetyl/core.yml"

    @property
    def node_dir(self) -> Path:
        """The node's certificate, key and CA (0700)."""
        return self.prefix / "var/lib/baetyl/node"

    @property
    def ca_file(self) -> Path:
        """The cloud CA, which signed the broker's certificate."""
        return self.node_dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        """The node's client certificate (CN = nid)."""
        return self.node_dir / "client.pem"

    @property
    def key_file(self) -> Path:
        """The node's private key (0600), made here and never sent anywhere."""
        return self.node_dir / "client.key"

    @property
    def store_dir(self) -> Path:
        """The agent's local store."""
        return self.prefix / "var/lib/baetyl/store"

    @property
    def run_dir(self) -> Path:
        """Working directories of native app instances."""
        return self.prefix / "var/lib/baetyl/run"

    @property
    def objects_dir(self) -> Path:
        """Downloaded object items (agent.core.objects)."""
        return self.prefix / "var/lib/baetyl/objects"

    @property
    def log_dir(self) -> Path:
        """App logs, and the agent's own log when it runs without systemd."""
        return self.prefix / "var/log/baetyl"

    @property
    def core_log(self) -> Path:
        """baetyl-core's output when it runs without systemd."""
        return self.log_dir / "core.log"

    @property
    def pid_file(self) -> Path:
        """The pid of baetyl-core when it runs without systemd."""
        return self.prefix / "var/run/baetyl-core.pid"


@dataclass(frozen=True)
class Installed:
    """A complete installation found under a prefix."""

    nid: str
    config: CoreConfig


def prepare(layout: Layout) -> None:
    """Create the directories (idempotent); InitError when the prefix is not writable."""
    try:
        for relative, mode in _DIR_MODES:
            directory = layout.prefix / relative
            directory.mkdir(parents=True, exist_ok=True, mode=mode)
            directory.chmod(mode)
    except OSError as exc:
        raise InitError(
            f"cannot create the installation directories under {layout.prefix}: "
            f"{exc.strerror or exc}. Run as root, or choose another --prefix"
        ) from None


def installed(layout: Layout) -> Installed | None:
    """The installation under the prefix, if complete (core.yml valid, certificate and key match).

    A half-written one (activation interrupted) counts as absent: activating again repairs it.
    """
    if not layout.config_file.is_file():
        return None
    try:
        config = load_config(layout.config_file)
        identity = node_identity(config)
        matching = keys.matches(config.node.cert.read_bytes(), config.node.key.read_bytes())
    except (ConfigError, OSError):
        return None
    return Installed(identity.nid, config) if matching else None


def load_base(path: Path) -> dict[str, Any]:
    """A core.yml base (such as the Kubernetes ConfigMap): a YAML mapping, possibly empty."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InitError(f"--base-config {path}: cannot be read as YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InitError(f"--base-config {path}: must be a YAML mapping of core.yml keys")
    return data


def core_config(
    layout: Layout, *, mqtt_url: str, api_listen: str, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The core.yml content: the base's keys over ours, then the node identity and broker.

    The paths default to the prefix; a base may change anything but the certificate files and
    the broker address, which come from this activation.
    """
    ours: dict[str, Any] = {
        "cloud": {},
        "store": {"dir": str(layout.store_dir)},
        "run": {"dir": str(layout.run_dir)},
        "objects": {"dir": str(layout.objects_dir)},
        "log": {"dir": str(layout.log_dir)},
        "api": {"listen": api_listen},
    }
    merged = _merge(ours, dict(base or {}))
    node = {"ca": str(layout.ca_file), "cert": str(layout.cert_file), "key": str(layout.key_file)}
    given = merged.pop("cloud", None)
    extra = {k: v for k, v in given.items() if k != "mqtt"} if isinstance(given, dict) else {}
    cloud = {"mqtt": mqtt_url, **extra}
    merged.pop("node", None)
    return {"node": node, "cloud": cloud, **merged}


def write_node_files(layout: Layout, *, key_pem: bytes, cert_pem: str, ca_pem: str) -> None:
    """Write the key (0600), certificate and CA (0644) atomically."""
    atomic_write(layout.key_file, key_pem, mode=0o600)
    atomic_write(layout.cert_file, cert_pem.encode("ascii"), mode=0o644)
    atomic_write(layout.ca_file, ca_pem.encode("ascii"), mode=0o644)


def write_config(layout: Layout, config: Mapping[str, Any], *, expected_nid: str) -> CoreConfig:
    """Check `config` as baetyl-core will, then write core.yml (0644; it holds no secret)."""
    text = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
    try:
        parsed = parse_config(text, source=layout.config_file, base_dir=layout.config_file.parent)
        nid = node_identity(parsed).nid
    except ConfigError as exc:
        raise InitError(f"the core.yml to write is not valid:\n{exc}") from None
    if nid != expected_nid:
        raise InitError(f"the certificate names node {nid!r}, not {expected_nid!r}")
    names.check_nid(nid)
    atomic_write(layout.config_file, text.encode("utf-8"), mode=0o644)
    return parsed


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged
