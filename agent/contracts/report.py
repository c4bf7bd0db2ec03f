"""The well-known content of a node shadow (DESIGN §5, "Node shadow content").

The shadow itself stores free JSON; these models give its well-known keys a shape, with Baetyl's
spellings (`kernelVer`, `machineID`, `appstats`, ...) so that its users recognise them. The agent
builds its reports from them and the cloud reads reports through them.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import Field

from agent.contracts.resources import Labels, Quantity
from agent.contracts.wire import WireModel

Percent = Annotated[float, Field(ge=0, le=100)]


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


class AppStats(WireModel):
    """What an app is doing on the node, keyed by app name in `appstats` / `sysappstats`."""

    name: str
    version: str
    status: AppStatus
    cause: str = ""
    instances: dict[str, InstanceStats] = Field(default_factory=dict)


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
    role: str = ""
    labels: Labels = Field(default_factory=dict)


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
    """Which agent reports: `core` in the reported section."""

    version: str
    python: str
    backend: str
