"""`core.yml`, the agent's configuration: one typed, frozen tree, loaded and validated at start.

`load_config` reports every problem of a file at once, each with its key path
(`core.yml: sync.report_interval: must be > 0 (got -1)`), because an operator fixing a config on a
remote board over a slow link should not have to restart the agent once per typo. Keys are
snake_case; durations are seconds (a number) or Go-style strings (`"30s"`, `"5m"`, `"1m30s"`);
relative paths are relative to the directory of the config file. docs/agent.md is the reference.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo

from agent.contracts import field_names, names
from agent.contracts.kit.plugins import PluginError
from agent.contracts.version import VERSION
from agent.core import certinfo
from agent.core.backend import NodeIdentity
from agent.core.native.settings import NativeSettings
from agent.core.sync.link_plugin import DEFAULT_LINK, SYNC_LINK

DEFAULT_CONFIG_PATH = Path("/opt/baetyl/etc/baetyl/core.yml")

_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_LISTEN_RE = re.compile(
    r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+)):(?P<port>\d{1,5})$"
)
_MQTT_URL_RE = re.compile(
    r"^mqtts://(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+))(?::(?P<port>\d{1,5}))?/?$"
)
MQTTS_DEFAULT_PORT = 8883


class ConfigError(ValueError):
    """A config file that cannot be used; `problems` holds one `key.path: reason` line each."""

    def __init__(self, source: Path | str, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = problems
        super().__init__("\n".join(f"{self.source}: {problem}" for problem in problems))


def _shown(value: object) -> str:
    """A value as the operator wrote it in YAML (true, not True), for `(got ...)`."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60 and isinstance(value, dict | list | tuple):
        return "a mapping" if isinstance(value, dict) else "a list"
    return text


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string like `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueError, not TypeError
            f"must be a duration: seconds or a string like '30s' (got {_shown(value)})"
        )
    if isinstance(value, str):
        text = value.strip()
        if not _DURATION_RE.match(text):
            raise ValueError(
                f"must be a duration such as 30, '30s', '5m', '1h' or '1m30s' (got {_shown(value)})"
            )
        seconds = sum(
            float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART_RE.findall(text)
        )
    else:
        seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"must be > 0 (got {_shown(value)})")
    return seconds


def _path(value: object, info: ValidationInfo) -> Path:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError(f"must be a non-empty path (got {_shown(value)})")
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return path


def _listen(value: object) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not (match := _LISTEN_RE.match(value)):
        raise ValueError(
            f"must be 'host:port' (such as '127.0.0.1:30050'), or false to disable "
            f"(got {_shown(value)})"
        )
    if int(match["port"]) > 65535:
        raise ValueError(f"port must be 0-65535 (got {_shown(value)})")
    return value


def _mqtt_url(value: object) -> str:
    if not isinstance(value, str) or not (match := _MQTT_URL_RE.match(value)):
        raise ValueError(
            "must be an mqtts:// URL such as 'mqtts://cloud.example.com:8883' "
            f"(got {_shown(value)})"
        )
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"port must be 1-65535 (got {_shown(value)})")
    return value.rstrip("/")


def _keepalive(value: object) -> float:
    seconds = parse_duration(value)
    if not 1 <= seconds <= 65535:
        raise ValueError(f"must be between 1s and 65535s, as MQTT allows (got {_shown(value)})")
    return seconds


def _port_range(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(port, int) and not isinstance(port, bool) for port in value)
    ):
        raise ValueError(f"must be a list of two port numbers [start, end] (got {_shown(value)})")
    start, end = value
    if not 1 <= start <= end <= 65535:
        raise ValueError(f"must satisfy 1 <= start <= end <= 65535 (got [{start}, {end}])")
    return (start, end)


FilePath = Annotated[Path, BeforeValidator(_path)]
Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NodeConfig(_Section):
    """The node's client certificate (CN = nid), its key and the CA that signed the cloud's."""

    ca: FilePath = Path("/var/lib/baetyl/node/ca.pem")
    cert: FilePath = Path("/var/lib/baetyl/node/client.pem")
    key: FilePath = Path("/var/lib/baetyl/node/client.key")


class CloudConfig(_Section):
    """Where the cloud's MQTT broker is (mutual TLS with `node.*`)."""

    mqtt: Annotated[str, BeforeValidator(_mqtt_url)]
    keepalive: Annotated[float, BeforeValidator(_keepalive)] = 30.0

    @property
    def host(self) -> str:
        """The broker host name or address (IPv6 without brackets)."""
        match = _MQTT_URL_RE.match(self.mqtt)
        assert match is not None  # validated on load
        return match["ip6"] or match["host"]

    @property
    def port(self) -> int:
        """The broker port (8883 when the URL names none)."""
        match = _MQTT_URL_RE.match(self.mqtt)
        assert match is not None
        return int(match["port"]) if match["port"] else MQTTS_DEFAULT_PORT


class StoreConfig(_Section):
    """The local store: last desired state, fetched resources, backend bookkeeping."""

    dir: FilePath = Path("/var/lib/baetyl/store")


class RunConfig(_Section):
    """Working directories of native app instances."""

    dir: FilePath = Path("/var/lib/baetyl/run")


class LogConfig(_Section):
    """The agent's own log (to stderr, i.e. the journal) and where app logs are kept."""

    dir: FilePath = Path("/var/log/baetyl")
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


class EngineConfig(_Section):
    """The reconcile loop.

    `mode: event` (the default) reconciles as soon as the desired state changes. `mode: tick`
    applies a new desired state only at the next `interval` tick, as Baetyl v2's engine does: it
    exists to reproduce a polling agent's timing (bench/push_vs_poll.py), not for production.
    """

    interval: Duration = 30.0
    backend: Literal["native", "kube"] = "native"
    mode: Literal["event", "tick"] = "event"


class SyncConfig(_Section):
    """The cloud link.

    `mode: push` (the default, and the point of the product) reads the shadow as soon as the
    cloud pushes a `shadow/update/delta`. `mode: poll` ignores deltas and reads the shadow only
    every `report_interval`, as Baetyl v2 learns desired changes only from its periodic report:
    it exists to reproduce a polling agent's timing (bench/push_vs_poll.py), not for production.
    `link` names the sync link plug-in that carries the messages (docs/plugins.md): `mqtt`, the
    built-in, or one an installed package registers.
    """

    report_interval: Duration = 20.0
    timeout: Duration = 10.0
    mode: Literal["push", "poll"] = "push"
    link: str = DEFAULT_LINK


class ApiConfig(_Section):
    """The local HTTP API; `listen: false` (or null) switches it off."""

    listen: Annotated[str | None, BeforeValidator(_listen)] = "127.0.0.1:30050"

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, or None when the API is off."""
        if self.listen is None:
            return None
        match = _LISTEN_RE.match(self.listen)
        assert match is not None
        return (match["ip6"] or match["host"], int(match["port"]))


class NativeConfig(_Section):
    """The native (process) backend; the defaults are its settings' (NativeSettings)."""

    port_range: Annotated[tuple[int, int], BeforeValidator(_port_range)] = NativeSettings.port_range
    grace_period: Duration = NativeSettings.grace_period


class FunctionSection(_Section):
    """Functions (docs/functions.md): `address` is where the function proxy serves on this
    node; function services get it as `BAETYL_FUNCTION_ADDRESS`, to call other functions.
    `proxy: auto` runs `baetyl-function` as a system app while a function app is wanted; `off`
    leaves running a proxy to the operator."""

    address: Annotated[str, BeforeValidator(_listen)] = NativeSettings.function_address
    proxy: Literal["auto", "off"] = "auto"


class ObjectsSection(_Section):
    """Downloaded object items (docs/functions.md): where they are cached, by digest, and how
    big a download and an unpacked archive may be."""

    dir: FilePath = Path("/var/lib/baetyl/objects")
    max_bytes: int = Field(default=512 * 1024**2, gt=0)
    max_unpacked_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_members: int = Field(default=20_000, gt=0)
    timeout: Duration = 30.0


class KubeConfig(_Section):
    """The Kubernetes backend (`engine.backend: kube`; docs/kubernetes.md).

    `kubeconfig: null` (the default) uses the pod's service account, as the agent the install
    manifest runs does; a path (relative to core.yml) reaches a cluster from outside. `node_name`
    names the Node the agent reports on: "" means `$KUBE_NODE_NAME`, else the only node.
    `function_image` is the image function runtimes and the function proxy run in: the agent's
    own, which holds `function_proxy` (docs/functions.md). `host_paths` maps directories as
    the agent sees them to where they are on the node (`{/baetyl: /var/lib/baetyl-py}` for the
    agent in a pod), for the pods that mount the agent's files (its registry, object volumes).
    """

    kubeconfig: FilePath | None = None
    node_name: str = ""
    function_image: str = f"baetyl-py/agent:{VERSION}"
    host_paths: dict[str, str] = Field(default_factory=dict)

    def on_host(self, path: Path) -> Path:
        """Where `path` (as the agent sees it) is on the node."""
        for inside, outside in sorted(self.host_paths.items(), key=lambda i: -len(i[0])):
            if path.is_relative_to(inside):
                return Path(outside) / path.relative_to(inside)
        return path


class UpgradeSection(_Section):
    """Agent self-upgrade (docs/agent.md, "Upgrades")."""

    confirm_timeout: Duration = Field(default=120.0, ge=5.0, le=3600.0)
    """Seconds a new agent version has to connect and report before it is rolled back."""


class CoreConfig(_Section):
    """The whole of `core.yml`. Only `cloud.mqtt` has no default."""

    node: NodeConfig = Field(default_factory=NodeConfig)
    cloud: CloudConfig
    store: StoreConfig = Field(default_factory=StoreConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    native: NativeConfig = Field(default_factory=NativeConfig)
    kube: KubeConfig = Field(default_factory=KubeConfig)
    function: FunctionSection = Field(default_factory=FunctionSection)
    objects: ObjectsSection = Field(default_factory=ObjectsSection)
    upgrade: UpgradeSection = Field(default_factory=UpgradeSection)


def load_config(path: Path, *, check_files: bool = True) -> CoreConfig:
    """Read and validate `path`; ConfigError lists every problem, each with its key path.

    With `check_files` (the agent's case) the node certificate, key and CA must exist and be
    readable; tools that only need, say, the store directory pass False.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read: {_reason(exc)}"]) from exc
    return parse_config(text, source=path, base_dir=path.parent, check_files=check_files)


def parse_config(
    text: str, *, source: Path | str, base_dir: Path, check_files: bool = True
) -> CoreConfig:
    """Validate YAML `text` as core.yml; relative paths are taken relative to `base_dir`."""
    try:
        data, problems = _parse_yaml(text)
    except _YamlSyntaxError as exc:
        raise ConfigError(source, [str(exc)]) from exc
    if data is None:
        data = {}  # an empty file: every default, and a clear "cloud: required"
    if not isinstance(data, dict):
        raise ConfigError(
            source, [*problems, f"the top level must be a mapping (got {_shown(data)})"]
        )
    config: CoreConfig | None = None
    try:
        config = CoreConfig.model_validate(data, context={"base_dir": base_dir.absolute()})
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors(include_url=False))
    if config is not None and check_files:
        problems.extend(missing_files(config))
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def missing_files(config: CoreConfig) -> list[str]:
    """One problem per node certificate file that is absent or unreadable, with its key path."""
    problems = []
    for key in ("ca", "cert", "key"):
        file: Path = getattr(config.node, key)
        if not file.is_file():
            what = "is not a regular file" if file.exists() else "does not exist"
            problems.append(f"node.{key}: {file} {what}")
        elif not os.access(file, os.R_OK):
            problems.append(f"node.{key}: {file} is not readable by this user")
    return problems


def unsupported(config: CoreConfig) -> list[str]:
    """Settings the schema accepts but this installation cannot run with (said at start and
    `--check`): the kube backend without its extra package, or with an unreadable kubeconfig;
    a sync link plug-in that is not installed."""
    problems = []
    try:
        SYNC_LINK.check(config.sync.link)
    except PluginError as exc:
        problems.append(str(exc))
    if config.engine.backend == "kube":
        if not _installed("kubernetes_asyncio"):
            problems.append(
                "engine.backend: kube needs the kube extra, which is not installed "
                "(pip install 'baetyl-py[kube]')"
            )
        kubeconfig = config.kube.kubeconfig
        if kubeconfig is not None and not os.access(kubeconfig, os.R_OK):
            what = "does not exist" if not kubeconfig.exists() else "is not readable"
            problems.append(f"kube.kubeconfig: {kubeconfig} {what}")
    return problems


def _installed(package: str) -> bool:
    """Whether `package` can be imported, without importing it."""
    if package in sys.modules:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def node_identity(config: CoreConfig) -> NodeIdentity:
    """The node's namespace and name, from the CN (`<ns>.<node>`) of its client certificate."""
    return read_node_identity(config.node.cert, key_path="node.cert")


def read_node_identity(cert_file: Path, *, key_path: str = "node.cert") -> NodeIdentity:
    """Parse the PEM certificate `cert_file` and split its Subject CN into a NodeIdentity."""
    try:
        pem = cert_file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            cert_file, [f"{key_path}: cannot read the certificate: {_reason(exc)}"]
        ) from exc
    try:
        info = certinfo.read_pem(pem)
    except ValueError as exc:
        raise ConfigError(cert_file, [f"{key_path}: not a PEM certificate ({exc})"]) from exc
    if len(info.common_names) != 1:
        raise ConfigError(
            cert_file, [f"{key_path}: the certificate needs exactly one Subject CN (the node id)"]
        )
    common_name = info.common_names[0]
    try:
        namespace, name = names.split_nid(common_name)
    except names.InvalidName as exc:
        raise ConfigError(
            cert_file,
            [f"{key_path}: the certificate CN is not a node id '<namespace>.<node>': {exc}"],
        ) from exc
    return NodeIdentity(namespace=namespace, name=name)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys instead of silently keeping the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                mark = key_node.start_mark
                self.duplicates.append(
                    f"line {mark.line + 1}, column {mark.column + 1}: duplicate key {key!r}"
                )
            seen.add(key if isinstance(key, str) else id(key_node))
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> tuple[object, list[str]]:
    """The YAML value of `text` and the duplicate keys found; syntax errors as one problem."""
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise _YamlSyntaxError(f"{where}YAML syntax error: {what}") from exc
    except yaml.YAMLError as exc:
        raise _YamlSyntaxError(f"YAML error: {exc}") from exc
    finally:
        loader.dispose()
    return data, list(loader.duplicates)


class _YamlSyntaxError(Exception):
    """The file is not YAML at all; nothing else can be checked."""


def _describe(error: Any) -> str:
    """`key.path: reason (got value)` for one pydantic error, in the words of a config file."""
    location = _key_path(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return f"{location}: unknown key{_suggestion(error['loc'])}"
    if kind == "missing":
        return f"{location}: required"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return f"{location}: {message.removeprefix('Value error, ')}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{location}: must be a mapping (got {_shown(value)})"
    if kind == "literal_error":
        return f"{location}: must be one of {error['ctx']['expected']} (got {_shown(value)})"
    message = message.replace("Input should be", "must be", 1)
    return f"{location}: {message} (got {_shown(value)})"


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _suggestion(loc: tuple[int | str, ...]) -> str:
    """`(did you mean ...)` / `(allowed: ...)` for an unknown key, from the schema itself."""
    allowed = field_names.accepted(CoreConfig, loc[:-1])
    if not allowed:
        return ""
    close = field_names.closest(str(loc[-1]), allowed)
    if close:
        return f" (did you mean {close!r}?)"
    return f" (allowed: {', '.join(allowed)})"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
