"""Resource models of DESIGN §7 (Application, Service, Volume, Configuration, Secret) on the wire.

Field names follow Baetyl's specV1 JSON (camelCase) so that its users recognise them. These are the
values the cloud stores and serves over `resources/get` and that the agent's engine applies; the
validators here refuse specs that no backend could run, before they reach a node.
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from agent.contracts import cron, names, objects, selectors
from agent.contracts.wire import WireModel

CONFIG_DATA_MAX_BYTES = 4 * 1024 * 1024 - 1  # "< 4 MiB", as in Baetyl
SECRET_DATA_MAX_BYTES = 64 * 1024
SECRET_TYPE_LABEL = "secret-type"  # noqa: S105 - a label name, not a password
SECRET_TYPES = ("config", "certificate", "registry")
PROGRAM_TYPE_LABEL = "baetyl-config-type"
PROGRAM_TYPE = "baetyl-program"
"""The label (and value) of a configuration holding a native program per platform (Baetyl's)."""

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z_][-A-Za-z0-9_]{0,62}$")
_HANDLER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_QUANTITY_RE = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")


class ResourceKind(enum.StrEnum):
    """The kinds an agent fetches with `resources/get`."""

    APPLICATION = "application"
    CONFIGURATION = "configuration"
    SECRET = "secret"  # noqa: S105 - a kind name, not a password


def _selector_text(text: str) -> str:
    selectors.parse(text)  # raises SelectorError (a ValueError) that points at the bad part
    return text


def _env_name(name: str) -> str:
    if not _ENV_NAME_RE.match(name):
        raise ValueError(f"environment variable name {name!r} must match {_ENV_NAME_RE.pattern}")
    return name


def _config_key(key: str) -> str:
    if not _CONFIG_KEY_RE.match(key) or key in {".", ".."}:
        raise ValueError(
            f"data key {key!r} must be letters, digits, '-', '_' and '.' (a file name)"
        )
    return key


def _quantity(value: str) -> str:
    if not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as '250m', '1.5' or '512Mi'")
    return value


_QUANTITY_FACTORS = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def quantity_value(value: str) -> float:
    """A Kubernetes quantity as a number (`"1500m"` → 1.5, `"16Gi"` → 17179869184.0); 0.0 for
    text that is not a quantity (a report is never refused over one bad figure)."""
    match = _QUANTITY_RE.match(value)
    if match is None:
        return 0.0
    suffix = match.group(3) or ""
    number = float(value[: len(value) - len(suffix)] if suffix in _QUANTITY_FACTORS else value)
    return number * _QUANTITY_FACTORS.get(suffix, 1.0)


def _mount_path(path: str) -> str:
    if not path or "\x00" in path:
        raise ValueError("mountPath must be a non-empty path")
    if ".." in path.split("/"):
        raise ValueError(f"mountPath {path!r} must not contain '..'")
    return path


Name = Annotated[str, AfterValidator(names.check_name)]
AppName = Annotated[str, AfterValidator(names.check_app_name)]
ServiceName = Annotated[str, AfterValidator(names.check_service_name)]
Namespace = Annotated[str, AfterValidator(names.check_namespace)]
Labels = Annotated[dict[str, str], AfterValidator(names.check_labels)]
SelectorText = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_selector_text)]
Version = Annotated[str, StringConstraints(max_length=64, pattern=r"^[-._a-zA-Z0-9]*$")]
Description = Annotated[str, StringConstraints(max_length=1024)]
Quantity = Annotated[str, StringConstraints(max_length=64), AfterValidator(_quantity)]
Port = Annotated[int, Field(ge=1, le=65535)]
# Every integer of a spec is bounded: the JSON encoders of the cloud and the agent take 64-bit
# integers at most, and no node runs more than a few hundred instances or waits for days.
MAX_REPLICA = 1000
MAX_PROBE_SECONDS = 86400
MAX_COUNT = 1000
Replica = Annotated[int, Field(ge=0, le=MAX_REPLICA)]
ProbeSeconds = Annotated[int, Field(ge=1, le=MAX_PROBE_SECONDS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


class EnvVar(WireModel):
    """One environment variable of a service."""

    name: Annotated[str, AfterValidator(_env_name)]
    value: str = ""


class ContainerPort(WireModel):
    """A port a service listens on, optionally published on the host or as a NodePort."""

    container_port: Port
    host_port: Annotated[int, Field(ge=0, le=65535)] = 0
    host_ip: Annotated[str, StringConstraints(max_length=45, pattern=r"^[0-9A-Fa-f.:]*$")] = Field(
        default="", alias="hostIP"
    )
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    service_type: Literal["ClusterIP", "NodePort"] | None = None
    node_port: Annotated[int, Field(ge=30000, le=32767)] | None = None

    @model_validator(mode="after")
    def _node_port_matches_type(self) -> ContainerPort:
        if self.service_type == "NodePort" and self.node_port is None:
            raise ValueError("serviceType NodePort needs a nodePort (30000-32767)")
        if self.node_port is not None and self.service_type != "NodePort":
            raise ValueError("nodePort is only allowed with serviceType NodePort")
        return self


class VolumeMount(WireModel):
    """Where a declared volume appears in a service (under its instance directory when native)."""

    name: Name
    mount_path: Annotated[str, AfterValidator(_mount_path)]
    read_only: bool = False
    sub_path: str = ""
    immutable: bool = False
    """Baetyl's console mark for mounts the cloud generated (function code); kept as given."""
    auto_clean: bool = False
    """Baetyl: delete the mounted object files once no app version uses them. Always so here:
    the node's object cache drops what no stored configuration names (docs/functions.md)."""


class ResourceRequirements(WireModel):
    """CPU/memory limits and requests as Kubernetes quantities."""

    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


class Capabilities(WireModel):
    """Linux capabilities added to or dropped from a container (kube)."""

    add: list[Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")]] = Field(
        default_factory=list
    )
    drop: list[Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")]] = Field(
        default_factory=list
    )


class Security(WireModel):
    """Security settings of a service: Baetyl's `privileged`, and the rest of a Kubernetes
    container security context (kube mode; the native backend runs as the agent's account)."""

    privileged: bool = False
    run_as_user: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    run_as_group: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    capabilities: Capabilities | None = None


class Device(WireModel):
    """A host device (`/dev/...`) given to a service's container; Baetyl's `devices[]`.

    Kubernetes has no per-device permission without a device plugin: the device node appears in
    the container, and opening it needs `security.privileged` (docs/kubernetes.md).
    """

    device_path: Annotated[
        str, StringConstraints(pattern=r"^/dev/[-_./A-Za-z0-9]+$", max_length=256)
    ]
    policy: str = ""
    description: Description = ""


class ExecAction(WireModel):
    """Probe by running a command; exit status 0 is healthy."""

    command: Annotated[list[str], Field(min_length=1)]


class HTTPGetAction(WireModel):
    """Probe by an HTTP GET; a 2xx/3xx answer is healthy."""

    path: str = "/"
    port: Port
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"


class TCPSocketAction(WireModel):
    """Probe by opening a TCP connection."""

    port: Port
    host: str | None = None


class Probe(WireModel):
    """A liveness or readiness probe with Kubernetes' field names and defaults."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: Annotated[int, Field(ge=0, le=MAX_PROBE_SECONDS)] = 0
    period_seconds: ProbeSeconds = 10
    timeout_seconds: ProbeSeconds = 1
    success_threshold: Count = 1
    failure_threshold: Count = 3

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Probe:
        given = [a for a in (self.exec, self.http_get, self.tcp_socket) if a is not None]
        if len(given) != 1:
            raise ValueError("a probe needs exactly one of exec, httpGet or tcpSocket")
        return self


PYTHON_RUNTIME_RE = re.compile(r"^python3(\.?[0-9]{1,2})?$")
"""`python3`, and Baetyl's versioned names (`python36`, `python3.6`, …): all run on the node's
Python 3 (docs/functions.md)."""


class FunctionConfig(WireModel):
    """The runtime a function service runs on (for example `python3`) and the configuration
    holding its code (`name`), as Baetyl's `functionConfig`."""

    name: str = ""
    runtime: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    version: Version = ""
    """The code configuration's version, pinned by the cloud as it pins volumes'."""

    @property
    def runtime_kind(self) -> str | None:
        """`python3` for every Python 3 name, None for a runtime this platform lacks."""
        return "python3" if PYTHON_RUNTIME_RE.match(self.runtime) else None


class Function(WireModel):
    """One function of a function service: invoked as `/{app}/{name}`, run as `handler`."""

    name: Annotated[str, StringConstraints(pattern=_FUNCTION_NAME_RE.pattern)]
    handler: Annotated[str, StringConstraints(pattern=_HANDLER_RE.pattern)]
    codedir: str = ""


def _program_ref(value: object) -> object:
    """Baetyl writes `programConfig: <config name>`; `{name, version}` is the pinned form."""
    return {"name": value} if isinstance(value, str) else value


class Service(WireModel):
    """One service of an application: a process (native) or a container (kube), `replica` times."""

    name: ServiceName
    image: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: str = ""
    ports: list[ContainerPort] = Field(default_factory=list)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    resources: ResourceRequirements | None = None
    security: Security | None = None
    replica: Replica | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    hostname: Annotated[
        str, StringConstraints(max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    ] = ""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    devices: list[Device] = Field(default_factory=list)
    function_config: FunctionConfig | None = None
    functions: list[Function] = Field(default_factory=list)
    program_config: Annotated[ObjectRef, BeforeValidator(_program_ref)] | None = None
    """A native service's program: a configuration holding it (Baetyl's `programConfig`)."""
    runtime: Annotated[str, StringConstraints(max_length=63)] = ""
    """The container runtime class (`nvidia`, say): the pod's runtimeClassName in kube mode."""
    labels: Labels = Field(default_factory=dict)
    """Baetyl's deprecated per-service labels: kept as given (the app's labels apply)."""
    host_network: bool = False
    """Deprecated in Baetyl: the first service's value is the app's when the app has none."""
    job_config: JobConfig | None = None
    """Deprecated in Baetyl: the first service's is the app's when the app has none."""
    type: Literal["", "deployment", "daemonset", "statefulset", "job", "cronjob"] = ""
    """Deprecated in Baetyl (the app's `workload`): the first service's when the app has none."""

    @model_validator(mode="after")
    def _unique_env_and_functions(self) -> Service:
        _refuse_duplicates("environment variable", [e.name for e in self.env], where=self.name)
        _refuse_duplicates("function", [f.name for f in self.functions], where=self.name)
        return self


class ObjectRef(WireModel):
    """A reference to a configuration or secret; an empty version means "the current one"."""

    name: Name
    version: Version = ""


class HostPathVolume(WireModel):
    """A directory or file of the host."""

    path: Annotated[str, StringConstraints(pattern=r"^/")]
    type: Literal[
        "",
        "DirectoryOrCreate",
        "Directory",
        "FileOrCreate",
        "File",
        "Socket",
        "CharDevice",
        "BlockDevice",
    ] = ""


class EmptyDirVolume(WireModel):
    """A scratch directory that lives as long as the service instance."""

    medium: Literal["", "Memory"] = ""
    size_limit: Quantity | None = None


class Volume(WireModel):
    """A named volume: exactly one of config, secret, hostPath or emptyDir."""

    name: Name
    config: ObjectRef | None = None
    secret: ObjectRef | None = None
    host_path: HostPathVolume | None = None
    empty_dir: EmptyDirVolume | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Volume:
        sources = [self.config, self.secret, self.host_path, self.empty_dir]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                f"volume {self.name!r} needs exactly one of config, secret, hostPath or emptyDir"
            )
        return self


def _zero_is_one(value: object) -> object:
    """Baetyl writes `completions: 0` (and leaves `parallelism` out) for "the default", 1."""
    return 1 if value == 0 else value


class JobConfig(WireModel):
    """Run-to-completion settings for `workload: job` (0 counts as Baetyl's default, 1)."""

    completions: Annotated[Count, BeforeValidator(_zero_is_one)] = 1
    parallelism: Annotated[Count, BeforeValidator(_zero_is_one)] = 1
    backoff_limit: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 6
    restart_policy: Literal["Never", "OnFailure", ""] = "Never"

    @model_validator(mode="after")
    def _never_by_default(self) -> JobConfig:
        if not self.restart_policy:
            self.restart_policy = "Never"
        return self


class ResourceMetric(WireModel):
    """The resource an autoscaler watches: cpu or memory, as a utilisation or a value."""

    name: Literal["cpu", "memory"]
    target_type: Literal["Utilization", "Value", "AverageValue", ""] = ""
    value: Annotated[str, StringConstraints(max_length=64)] = ""
    average_value: Annotated[str, StringConstraints(max_length=64)] = ""
    average_utilization: Annotated[int, Field(ge=0, le=100000)] = 0


class MetricSpec(WireModel):
    """One metric of an autoscaler (Baetyl's only type, `Resource`)."""

    type: Literal["Resource", ""] = "Resource"
    resource: ResourceMetric | None = None


class AutoScaleConfig(WireModel):
    """Baetyl's `autoScaleCfg`: replicas between the bounds, driven by cpu or memory."""

    min_replicas: Annotated[int, Field(ge=0, le=MAX_REPLICA)] = 0
    max_replicas: Annotated[int, Field(ge=0, le=MAX_REPLICA)] = 0
    metrics: list[MetricSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounds(self) -> AutoScaleConfig:
        if self.metrics:  # Baetyl checks the bounds only when there is something to scale on
            if self.min_replicas < 1:
                raise ValueError("autoScaleCfg.minReplicas must be at least 1")
            if self.max_replicas < self.min_replicas:
                raise ValueError("autoScaleCfg.maxReplicas must be at least minReplicas")
        return self


OtaInfo = Annotated[dict[str, Any], Field(max_length=16)]
"""Baetyl's Android OTA block (`apkInfo`, `deviceGroup`, `task`): no node here runs Android, so it
is kept as given and shown back, never acted on."""
ZERO_TIME = "0001-01-01T00:00:00Z"
"""How Go writes an unset time; Baetyl's bodies carry it in every time field."""


class Application(WireModel):
    """A deployable app: services and the volumes they mount, matched to nodes by selector."""

    name: AppName
    namespace: Namespace | None = None
    version: Version = ""
    type: Literal["container", "function"] = "container"
    mode: Literal["native", "kube"] = "kube"
    labels: Labels = Field(default_factory=dict)
    selector: SelectorText = ""
    node_selector: SelectorText = ""
    description: Description = ""
    system: bool = False
    replica: Replica = 1
    workload: Literal["", "deployment", "daemonset", "statefulset", "job", "cronjob"] = ""
    """"" (Baetyl's unsaid) is the first service's deprecated `type`, else deployment."""
    job_config: JobConfig | None = None
    cron_time: Annotated[str, StringConstraints(max_length=128)] = ""
    """A cron schedule for `workload: cronjob` (agent.contracts.cron: five fields or `@hourly`,
    UTC); or, as Baetyl writes it, a time (RFC 3339) at which a `cronStatus: 1` app is deployed
    (DESIGN §7, docs/api.md)."""
    cron_status: Annotated[int, Field(ge=0, le=2)] = 0
    """Baetyl's deferred deployment: 0 none, 1 waiting for `cronTime`, 2 done."""
    host_network: bool = False
    dns_policy: Literal["", "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] = ""
    preserve_updates: bool = False
    """Baetyl: update workloads in place instead of deleting them first. Always so here (the
    kube backend patches, the native one replaces instances one by one)."""
    auto_scale_cfg: AutoScaleConfig | None = None
    ota: OtaInfo = Field(default_factory=dict)
    init_services: list[Service] = Field(default_factory=list)
    services: Annotated[list[Service], Field(min_length=1)]
    volumes: list[Volume] = Field(default_factory=list)
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def runtime_class(self) -> str:
        """The container runtime class of the app's pod (kube): the first service's `runtime`
        that names one, services before init services (a pod has one)."""
        every = [*self.services, *self.init_services]
        return next((s.runtime for s in every if s.runtime), "")

    @property
    def cron_schedule(self) -> str:
        """The schedule of a cronjob ("" when `cronTime` is Baetyl's time)."""
        return "" if self.deploy_at is not None or self.cron_time == ZERO_TIME else self.cron_time

    @property
    def deploy_at(self) -> datetime | None:
        """When a deferred (`cronStatus: 1`) app is deployed; None without a set time."""
        return _timestamp(self.cron_time)

    def _from_legacy_services(self) -> None:
        """Baetyl's compatibility rule: an app that does not say its `workload`, `hostNetwork`,
        `jobConfig` or `replica` (or says 0) takes the first service's deprecated `type`,
        `hostNetwork`, `jobConfig` and `replica`."""
        first = self.services[0]
        given = self.model_fields_set
        if not self.workload:
            self.workload = first.type or "deployment"
        if "host_network" not in given and first.host_network:
            self.host_network = True
        if self.job_config is None and first.job_config is not None:
            self.job_config = first.job_config.model_copy()
        if ("replica" not in given or self.replica == 0) and first.replica:
            self.replica = first.replica

    @model_validator(mode="after")
    def _consistent(self) -> Application:
        self._from_legacy_services()
        every = [*self.init_services, *self.services]
        _refuse_duplicates("service", [s.name for s in every], where=self.name)
        _refuse_duplicates("volume", [v.name for v in self.volumes], where=self.name)
        declared = {v.name for v in self.volumes}
        for service in every:
            for mount in service.volume_mounts:
                if mount.name not in declared:
                    raise ValueError(
                        f"service {service.name!r} mounts volume {mount.name!r}, "
                        "which the application does not declare"
                    )
            self._check_service_kind(service)
        self._check_host_ports(every)
        schedule = self.cron_schedule
        if self.workload == "cronjob":
            if not schedule:
                raise ValueError(
                    "workload cronjob needs cronTime, a schedule of five cron fields "
                    "such as '*/5 * * * *' (or '@hourly', '@daily', ...)"
                )
            try:
                cron.parse(schedule)  # as Kubernetes and the native backend read it
            except cron.CronError as exc:
                raise ValueError(f"cronTime: {exc}") from None
        if schedule and self.workload != "cronjob":
            raise ValueError(
                "cronTime: a schedule is only allowed with workload cronjob (a deferred "
                "deployment takes a time, such as 2027-01-01T08:00:00Z, with cronStatus 1)"
            )
        if self.cron_status == 1 and self.deploy_at is None:
            raise ValueError("cronStatus 1 (deploy later) needs cronTime, the time to deploy at")
        return self

    def _check_service_kind(self, service: Service) -> None:
        if self.type == "function":
            if service.program_config is not None:
                raise ValueError(
                    f"function app: service {service.name!r} must not have programConfig"
                )
            config = service.function_config
            if config is None:
                raise ValueError(f"function app: service {service.name!r} needs functionConfig")
            if config.runtime_kind is None:
                raise ValueError(
                    f"function app: service {service.name!r}: runtime {config.runtime!r} is not "
                    "available (python3, or Baetyl's python36/python3.x names)"
                )
            if not _is_name(config.name):
                raise ValueError(
                    f"function app: service {service.name!r}: functionConfig.name must name the "
                    "configuration that holds the code"
                )
            if not service.functions:
                raise ValueError(f"function app: service {service.name!r} lists no functions")
            return
        if service.function_config is not None or service.functions:
            raise ValueError(
                f"container app: service {service.name!r} must not have functionConfig or functions"
            )
        if self.mode == "kube" and not service.image:
            raise ValueError(f"kube app: service {service.name!r} needs an image")
        if self.mode == "kube" and service.program_config is not None:
            raise ValueError(
                f"kube app: service {service.name!r}: programConfig is for native apps "
                "(a kube service runs its image)"
            )
        if self.mode == "native" and not service.command and service.program_config is None:
            raise ValueError(
                f"native app: service {service.name!r} needs a command or a programConfig"
            )

    def _check_host_ports(self, services: list[Service]) -> None:
        used = [(p.protocol, p.host_port) for s in services for p in s.ports if p.host_port]
        for (protocol, port), count in Counter(used).items():
            if count > 1:
                raise ValueError(f"host port {port}/{protocol} is published more than once")
        if used and self.replica > 1:
            raise ValueError("an app that publishes host ports cannot have replica > 1")

    def references(self) -> list[tuple[ResourceKind, ObjectRef]]:
        """The configurations and secrets this app needs, in declaration order: its volumes',
        then the code configurations of its function services (`functionConfig.name`) and the
        program configurations of native services (`programConfig`)."""
        refs: list[tuple[ResourceKind, ObjectRef]] = []
        for volume in self.volumes:
            if volume.config is not None:
                refs.append((ResourceKind.CONFIGURATION, volume.config))
            elif volume.secret is not None:
                refs.append((ResourceKind.SECRET, volume.secret))
        named = {ref.name for kind, ref in refs if kind is ResourceKind.CONFIGURATION}
        for service in [*self.init_services, *self.services]:
            found: ObjectRef | None = service.program_config
            config = service.function_config if self.type == "function" else None
            if config is not None and config.name:
                found = ObjectRef(name=config.name, version=config.version)
            if found is not None and found.name not in named:
                named.add(found.name)
                refs.append((ResourceKind.CONFIGURATION, found.model_copy()))
        return refs

    def function_services(self) -> dict[str, str]:
        """`{function: service}` of a function app, in the order the app lists them (the first
        is what `/{app}` invokes); empty for other apps."""
        if self.type != "function":
            return {}
        return {
            function.name: service.name
            for service in self.services
            if service.function_config is not None
            for function in service.functions
        }

    def pin(self, kind: ResourceKind, name: str, version: str) -> bool:
        """Point every reference to the `kind` resource `name` (volumes, the code configurations
        of function services, program configurations) at `version`; whether anything changed."""
        changed = False
        for volume in self.volumes:
            ref = volume.config if kind is ResourceKind.CONFIGURATION else volume.secret
            if ref is not None and ref.name == name and ref.version != version:
                ref.version = version
                changed = True
        if kind is ResourceKind.CONFIGURATION:
            for service in [*self.init_services, *self.services]:
                pinned: list[FunctionConfig | ObjectRef | None] = [
                    service.function_config,
                    service.program_config,
                ]
                for pin in pinned:
                    if pin is not None and pin.name == name and pin.version != version:
                        pin.version = version
                        changed = True
        return changed


def _timestamp(text: str) -> datetime | None:
    """An RFC 3339 time other than Go's zero time; None for anything else."""
    if not text or text == ZERO_TIME or len(text.split()) != 1:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and moment.year > 1 else None


def _config_data_size(data: dict[str, str]) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


ConfigData = dict[Annotated[str, AfterValidator(_config_key)], str]


class _NamedFiles(WireModel):
    """The fields configurations and secrets share: named text files (key = file name)."""

    name: Name
    namespace: Namespace | None = None
    version: Version = ""
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    system: bool = False
    data: ConfigData = Field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None


class Configuration(_NamedFiles):
    """Named text files (key = file name) that apps mount as a volume."""

    @model_validator(mode="after")
    def _bounded(self) -> Configuration:
        size = _config_data_size(self.data)
        if size > CONFIG_DATA_MAX_BYTES:
            raise ValueError(
                f"data is {size} bytes; it must be under 4 MiB ({size} > {CONFIG_DATA_MAX_BYTES})"
            )
        objects.object_items(self.data)  # raises naming the bad object item
        return self

    def object_items(self) -> dict[str, objects.ObjectItem]:
        """The items the node downloads (Baetyl's `object`/`function` items), by item key."""
        return objects.object_items(self.data)

    def text_items(self) -> dict[str, str]:
        """The files carried in the configuration itself (`kv` items)."""
        return {k: v for k, v in self.data.items() if not objects.is_object_key(k)}

    def for_platform(self, platform: str) -> Configuration:
        """The configuration as a node of `platform` (`linux-amd64`, ...) mounts it.

        A program configuration (label `baetyl-config-type: baetyl-program`) holds one object
        item per platform; as in Baetyl, the items whose key does not contain the node's
        platform are dropped. Other configurations are returned as they are.
        """
        if self.labels.get(PROGRAM_TYPE_LABEL) != PROGRAM_TYPE:
            return self
        data = {
            key: value
            for key, value in self.data.items()
            if not objects.is_object_key(key) or platform in key
        }
        return self.model_copy(update={"data": data})


class Secret(_NamedFiles):
    """Like a configuration, but encrypted at rest, mounted mode 0600, never listed with its data.

    The `secret-type` label says what it holds: `config` (generic), `certificate` or `registry`.
    """

    @model_validator(mode="after")
    def _bounded_and_typed(self) -> Secret:
        size = _config_data_size(self.data)
        if size > SECRET_DATA_MAX_BYTES:
            raise ValueError(f"data is {size} bytes, over the limit of {SECRET_DATA_MAX_BYTES}")
        kind = self.labels.get(SECRET_TYPE_LABEL, "config")
        if kind not in SECRET_TYPES:
            raise ValueError(
                f"label {SECRET_TYPE_LABEL}={kind!r} must be one of {', '.join(SECRET_TYPES)}"
            )
        return self

    @property
    def secret_type(self) -> str:
        """`config`, `certificate` or `registry`: the `secret-type` label (default `config`)."""
        return self.labels.get(SECRET_TYPE_LABEL, "config")


def _is_name(text: str) -> bool:
    try:
        names.check_name(text)
    except ValueError:
        return False
    return True


def _refuse_duplicates(what: str, items: list[str], *, where: str) -> None:
    repeated = sorted(name for name, count in Counter(items).items() if count > 1)
    if repeated:
        raise ValueError(f"{where}: {what} names must be unique, repeated: {', '.join(repeated)}")
