"""The well-known content of a node shadow (DESIGN §5, "Node shadow content").

The shadow itself stores free JSON; these models give its well-known keys a shape, with Baetyl's
spellings (`kernelVer`, `machineID`, `appstats`, ...) so that its users recognise them. The agent
builds its reports from them and the cloud reads reports through them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from agent.contracts import names
from agent.contracts.resources import Quantity
from agent.contracts.wire import WireModel, describe_errors

Percent = Annotated[float, Field(ge=0, le=100)]
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


class AppStats(WireModel):
    """What an app is doing on the node, keyed by app name in `appstats` / `sysappstats`."""

    name: str
    version: str
    status: AppStatus
    cause: str = ""
    instances: dict[str, InstanceStats] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    """Fields of the app's spec the node accepted but does not act on (agent.core.unused_fields)."""


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
    role: str = ""
    labels: ReportedLabels = Field(default_factory=dict)


class Resources(WireModel):
    """CPU, memory and disk as Kubernetes quantities."""

    cpu: Quantity = "0"
    memory: Quantity = "0"
    disk: Quantity = "0"


class ResourcePercent(WireModel):
    """CPU, memory and disk use in percent of capacity."""

    cpu: Percent = 0.0
    memory: Percent = 0.0
    disk: Percent = 0.0


class NodeStats(WireModel):
    """Live health and load of one host, keyed by hostname in `nodestats`."""

    ready: bool
    usage: Resources = Field(default_factory=Resources)
    capacity: Resources = Field(default_factory=Resources)
    percent: ResourcePercent = Field(default_factory=ResourcePercent)


class CoreInfo(WireModel):
    """Which agent reports: `core` in the reported section, with the settings the cloud may
    change at run time as they are in force (agent.contracts.core_settings)."""

    version: str
    python: str
    backend: str
    frequency: int | None = None
    log_level: str | None = None


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
