"""The well-known content of a node shadow (DESIGN §5, "Node shadow content").

The shadow itself stores free JSON; these models give its well-known keys a shape, with Baetyl's
spellings (`kernelVer`, `machineID`, `appstats`, ...) so that its users recognise them. The agent
builds its reports from them and the cloud reads reports through them.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from agent.contracts import names
from agent.contracts.resources import Quantity
from agent.contracts.wire import WireModel, describe_errors

REPORTED_LABELS_MAX = 256  # a Kubernetes host may carry many more labels than users give


def _reported_labels(labels: dict[str, str]) -> dict[str, str]:
    return names.check_labels(labels, max_count=REPORTED_LABELS_MAX)


ReportedLabels = Annotated[dict[str, str], AfterValidator(_reported_labels)]


class AppStatus(enum.StrEnum):
    """The life-cycle phase of an app or of one of its instances (Kubernetes pod phases)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class Usage(WireModel):
    """CPU and memory in use, as Kubernetes quantities (`"250m"` cores, `"812Mi"` bytes)."""

    cpu: Quantity = "0"
    memory: Quantity = "0"


_KI = 1024
_MI = 1024 * 1024
_GI = 1024 * 1024 * 1024


def cpu_quantity(percent: float) -> str:
    """Percent of one core as millicores: 1.2 % → `12m` (a Usage's cpu)."""
    millicores = round(percent * 10)
    return f"{millicores}m" if millicores > 0 else "0"


def memory_quantity(size: int) -> str:
    """Bytes in the nearest binary unit, as a Usage's memory: `34Mi`, `512Ki`, `2Gi` (over
    10 Gi) or plain bytes."""
    if size >= 10 * _GI:
        return f"{round(size / _GI)}Gi"
    if size >= _MI:
        return f"{round(size / _MI)}Mi"
    if size >= _KI:
        return f"{round(size / _KI)}Ki"
    return str(max(size, 0))


class ContainerState(WireModel):
    """One container of a pod: Waiting, Running or Terminated, and why."""

    name: str
    state: Literal["Waiting", "Running", "Terminated", ""] = ""
    reason: str = ""


class InstanceStats(WireModel):
    """One running instance of an app: a process (native) or a pod (kube)."""

    name: str
    service_name: str = ""
    status: AppStatus
    cause: str = ""
    pid: int | None = None
    pod_name: str | None = None
    restarts: Annotated[int, Field(ge=0)] = 0
    usage: Usage = Field(default_factory=Usage)
    create_time: datetime | None = None
    app_name: str = ""
    ip: str = ""
    """The pod's IP (kube); "" for a native process, which shares the host's addresses."""
    node_name: str = ""
    containers: list[ContainerState] = Field(default_factory=list)
    """A pod's containers and their state (kube), as Baetyl reports them."""


class CronJobStats(WireModel):
    """The schedule of a `workload: cronjob` app (decision #152): Kubernetes CronJob's
    `lastScheduleTime` and `lastSuccessfulTime`, and what a native node counts besides (a kube
    node fills what its CronJob's status holds)."""

    schedule: str
    next_schedule_time: datetime | None = None
    last_schedule_time: datetime | None = None
    """The scheduled time of the last run started."""
    last_successful_time: datetime | None = None
    """When the last run that succeeded ended."""
    last_result: AppStatus | None = None
    """Succeeded or Failed: how the last finished run ended."""
    last_cause: str = ""
    active: bool = False
    """A run is going (its instances are the app's instances)."""
    skipped: Annotated[int, Field(ge=0)] = 0
    """Times not run because the run before was still going (concurrency policy Forbid)."""
    missed: Annotated[int, Field(ge=0)] = 0
    """Times not run because no agent ran then (the latest of them is run once, late)."""


class AppStats(WireModel):
    """What an app is doing on the node, keyed by app name in `appstats` / `sysappstats`."""

    name: str
    version: str
    status: AppStatus
    cause: str = ""
    instances: dict[str, InstanceStats] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    """Fields of the app's spec the node accepted but does not act on (agent.core.unused_fields)."""
    cron_job: CronJobStats | None = None
    """A cronjob app's schedule and runs."""


class NodeInfo(WireModel):
    """Static facts about one host of the node, keyed by hostname in `node`."""

    hostname: str
    address: str = ""
    arch: str = ""
    os: str = ""
    kernel_ver: str = ""
    os_image: str = ""
    machine_id: str = Field(default="", alias="machineID")
    boot_id: str = Field(default="", alias="bootID")
    system_uuid: str = Field(default="", alias="systemUUID")
    container_runtime: str = ""
    """`containerd://1.7.x` on a kube node; "" on a native one (Baetyl's cloud tells the two
    apart by it)."""
    variant: str | None = None
    """The ARM variant (`v8`, `v7`, `v6`) beside `arch`, as Baetyl reports it; absent elsewhere
    (so that clouds older than this field still take reports of non-ARM nodes)."""
    role: str = ""
    labels: ReportedLabels = Field(default_factory=dict)


RESOURCE_KEYS_MAX: Final = 128
"""Entries in one of a host's `usage`, `capacity` or `percent` maps: `cpu`, `memory`, `disk` and
one `disk_<mount point>` per mounted file system (a host with more reports the first by path)."""
RESOURCE_KEY_MAX: Final = 256
NetIOKey = Literal["netBytesSent", "netBytesRecv", "netPacketsSent", "netPacketsRecv"]
"""Baetyl's `netio` keys: bytes and packets sent and received per second."""
NETIO_KEYS: Final[tuple[NetIOKey, ...]] = (
    "netBytesSent",
    "netBytesRecv",
    "netPacketsSent",
    "netPacketsRecv",
)
_FRACTION_RE = re.compile(r"^[01](\.\d{1,17})?$")


def _decimal(value: float, places: int) -> str:
    """`value` with at most `places` decimals and no trailing zeros, as Go's
    `FormatFloat(v, 'f', -1)` writes Baetyl's figures: 0.25 → "0.25", 4.0 → "4"."""
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def cores_text(cores: float) -> str:
    """CPU in cores as a decimal string with at most three decimals (Baetyl's NodeView `cpu`):
    a quarter of a core → "0.25", four cores → "4"."""
    return _decimal(max(cores, 0.0), 3)


def bytes_text(size: float) -> str:
    """A size as a whole number of bytes (Baetyl's NodeView `memory` and disk figures)."""
    return str(max(int(size), 0))


def fraction_text(part: float, whole: float) -> str:
    """`part / whole` as Baetyl's `percent` writes it: a decimal fraction from "0" to "1" (four
    decimals at most); "1" once the part reaches the whole, "0" when there is no whole."""
    if not whole > 0 or not part > 0:
        return "0"
    return _decimal(min(part / whole, 1.0), 4)


def _legacy_percent(value: Any) -> Any:
    """A number from 0 to 100, as agents before decision 150 reported percentages, becomes a
    fraction: the cloud still takes the reports of an agent that was not upgraded (or rolled
    back to an older version). Other numbers are refused here, other types by `_fraction`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= 100:
            raise ValueError(f"{value!r} is not a fraction from '0' to '1' such as '0.125'")
        return fraction_text(value, 100)
    return value


def _fraction(value: str) -> str:
    if not _FRACTION_RE.match(value) or float(value) > 1:
        raise ValueError(f"{value!r} is not a fraction from '0' to '1' such as '0.125'")
    return value


ResourceKey = Annotated[str, StringConstraints(min_length=1, max_length=RESOURCE_KEY_MAX)]
Fraction = Annotated[str, BeforeValidator(_legacy_percent), AfterValidator(_fraction)]
Count = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
ResourceMap = Annotated[dict[ResourceKey, Quantity], Field(max_length=RESOURCE_KEYS_MAX)]
"""Figures by resource: `cpu` in cores ("0.25"), `memory`, `disk` and `disk_<mount>` in bytes;
any Kubernetes quantity is valid ("250m", "8Gi"), which is how older agents wrote them."""
FractionMap = Annotated[dict[ResourceKey, Fraction], Field(max_length=RESOURCE_KEYS_MAX)]
NetIO = dict[NetIOKey, Count]


class NodeStats(WireModel):
    """Live health and load of one host, keyed by hostname in `nodestats`, in Baetyl's formats
    (docs/agent.md, "GET /node/stats"): `usage` and `capacity` maps of decimal strings (cores,
    bytes), `percent` as fractions ("0.125"), one `disk_<mount>` entry per mounted file system
    beside `disk`, and `netio`. The pressure flags come from the Kubernetes Node's conditions
    (kube); a native node leaves them out, as Baetyl's does."""

    ready: bool
    disk_pressure: bool | None = None
    memory_pressure: bool | None = None
    pid_pressure: bool | None = None
    network_unavailable: bool | None = Field(default=None, alias="NetworkUnavailable")
    """Baetyl spells this one with a capital N."""
    usage: ResourceMap = Field(default_factory=dict)
    capacity: ResourceMap = Field(default_factory=dict)
    percent: FractionMap = Field(default_factory=dict)
    netio: NetIO = Field(default_factory=dict)


UPGRADE_STATES: Final = ("preparing", "switching", "done", "failed", "rolledBack")
"""Where an agent upgrade is (docs/agent.md, "Upgrades"): `preparing` (download, new virtualenv,
checks), `switching` (the new version starts), `done`, `failed` (refused before the switch:
the running version never stopped), `rolledBack` (the new version did not connect and report
in time, or exited, and the previous one runs again)."""


class UpgradeStatus(WireModel):
    """The last agent upgrade this node tried: `core.upgrade` in the reported section."""

    version: str
    """The version asked for."""
    state: Literal["preparing", "switching", "done", "failed", "rolledBack"]
    previous: str = ""
    """The version that ran before."""
    message: str = ""
    time: str = ""
    """When the state was reached, RFC 3339 UTC."""


class CoreInfo(WireModel):
    """Which agent reports: `core` in the reported section, with the settings the cloud may
    change at run time as they are in force (agent.contracts.core_settings).

    `wheel` repeats the desired `core.wheel` once its version runs, which closes the delta; a
    node that rolled back leaves the delta open, and `upgrade` says why.
    """

    version: str
    python: str
    backend: str
    frequency: int | None = None
    log_level: str | None = None
    wheel: dict[str, Any] | None = None
    upgrade: UpgradeStatus | None = None


_VersionMap = dict[str, str]
REPORTED_SHAPES: Final[Mapping[str, TypeAdapter[Any]]] = {
    "apps": TypeAdapter(_VersionMap),
    "sysapps": TypeAdapter(_VersionMap),
    "appstats": TypeAdapter(dict[str, AppStats]),
    "sysappstats": TypeAdapter(dict[str, AppStats]),
    "node": TypeAdapter(dict[str, NodeInfo]),
    "nodestats": TypeAdapter(dict[str, NodeStats]),
    "nodeprops": TypeAdapter(dict[str, str]),
    "core": TypeAdapter(CoreInfo),
    "modeinfo": TypeAdapter(dict[str, Any]),
}


def reported_problems(section: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """What is wrong with the well-known `keys` of a reported section (after the merge).

    The cloud renders these keys in its NodeView and reads them for status, so a report that
    leaves one of them in a shape other than DESIGN §5's is refused before it is stored. Keys
    the cloud does not know stay free JSON. The merged value is checked, not the patch, because
    reports are recursive diffs whose parts are not whole models.
    """
    problems: list[str] = []
    for key in keys:
        shape = REPORTED_SHAPES.get(key)
        if shape is None or key not in section:
            continue
        try:
            # Through JSON text, so values get the same rules as a payload (a datetime is text).
            shape.validate_json(json.dumps(section[key], allow_nan=False))
        except ValidationError as exc:
            for problem in describe_errors(exc):
                where, _, message = problem.partition(": ")
                inner = "" if where == "(payload)" else f".{where}"
                problems.append(f"state.reported.{key}{inner}: {message}")
        except ValueError as exc:
            problems.append(f"state.reported.{key}: not a JSON value ({exc})")
    return problems
