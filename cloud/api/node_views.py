"""Request and response models of the node routes, and rendering of node states into views.

Views keep Baetyl's NodeView shape: the shadow's `{name: version}` app maps are shown as lists of
`{name, version}` sorted by name, so Baetyl users and scripts find what they know.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from agent.contracts import names, shadow
from agent.contracts.desired import APP_SECTIONS, BUILTIN_SYSAPPS, NODEPROPS, DesiredState
from agent.contracts.report import bytes_text, cores_text, fraction_text
from agent.contracts.resources import Description, Labels, quantity_value
from agent.contracts.wire import WireModel
from cloud.api.listing import ListQuery, Page
from cloud.services.nodes import NodeApp, NodeState

BATCH_MAX = 20  # Baetyl's limit on names per batch request
NodeMode = Literal["native", "kube"]


def _node_name(name: str) -> str:
    return names.check_name(name, kind="node")


def _annotations(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        names.check_label_key(key)
    return value


NodeName = Annotated[str, AfterValidator(_node_name)]
Annotations = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=4096)]],
    Field(max_length=64),
    AfterValidator(_annotations),
]
PropKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _sys_apps(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(BUILTIN_SYSAPPS))
    if unknown:
        raise ValueError(
            f"sysApps: {', '.join(unknown)} is not a system app this platform offers "
            f"(offered: {', '.join(BUILTIN_SYSAPPS)})"
        )
    if len(set(value)) != len(value):
        raise ValueError("sysApps: each system app once")
    return value


SysApps = Annotated[list[str], AfterValidator(_sys_apps)]


def _no_accelerator(value: str) -> str:
    if value:
        raise ValueError(
            f"accelerator {value!r}: nodes with accelerators (GPU metrics) are not offered here; "
            "leave it empty"
        )
    return value


def _not_a_cluster(value: bool) -> bool:
    if value:
        raise ValueError("cluster: edge clusters are not offered here; a node is one machine")
    return value


class BaetylNodeFields(WireModel):
    """Fields of Baetyl's node that a body may carry, a GET result put back or a body written
    for Baetyl: the server owns them (times, versions, readiness, report, desire, the sync
    `mode`, which has its own route, and `attr`, which Baetyl's PUT keeps from the stored node),
    so they are read and ignored. `accelerator` and `cluster` must say what every node here is:
    none, and a single machine."""

    create_time: Any = None
    update_time: Any = None
    version: Any = None
    ready: Any = None
    report: Any = None
    desire: Any = None
    last_seen: Any = None
    mode: Any = None
    app_mode: Any = None
    attr: Any = None
    core_id: Any = None
    link: Any = None
    accelerator: Annotated[str, AfterValidator(_no_accelerator)] = ""
    cluster: Annotated[bool, AfterValidator(_not_a_cluster)] = False


class NodeCreate(BaetylNodeFields):
    """A node to create; `baetyl-node-name=<name>` is added to its labels."""

    name: NodeName
    namespace: str | None = None  # accepted when it is the token's (a GET result posted back)
    labels: Labels = Field(default_factory=dict)
    description: Description = ""
    annotations: Annotations = Field(default_factory=dict)
    node_mode: NodeMode = "native"
    sys_apps: SysApps = Field(default_factory=list)
    """Optional system apps the node runs (Baetyl's; `baetyl-function`)."""


class NodeUpdate(BaetylNodeFields):
    """A node update: absent fields keep their value; `name` and `nodeMode` cannot change."""

    name: NodeName | None = None
    namespace: str | None = None  # accepted when it is the token's (a GET result put back)
    labels: Labels | None = None
    description: Description | None = None
    annotations: Annotations | None = None
    node_mode: NodeMode | None = None
    sys_apps: SysApps | None = None


class AppRef(WireModel):
    """An app in a desired or reported state."""

    name: str
    version: str


class DesireView(WireModel):
    """What the cloud wants on the node."""

    apps: list[AppRef] = Field(default_factory=list)
    sysapps: list[AppRef] = Field(default_factory=list)
    nodeprops: dict[str, str] = Field(default_factory=dict)


class NodeView(WireModel):
    """A node with its readiness, desired state and last report (Baetyl's NodeView)."""

    namespace: str
    name: str
    version: str
    create_time: datetime
    update_time: datetime
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    description: str
    node_mode: str
    sys_apps: list[str] = Field(default_factory=list)
    ready: Annotated[int, Field(ge=0, le=2)]
    last_seen: str | None = None
    mode: str
    desire: DesireView | None = None
    report: dict[str, Any] | None = None


class NodeQuery(ListQuery):
    """Node list filters: Baetyl's `ready` (online/offline/uninstall) and `createSort`."""

    ready: Literal["online", "offline", "uninstall"] | None = None
    create_sort: Annotated[Literal["asc", "desc"], Field(alias="createSort")] = "desc"


class NodePage(Page[NodeView]):
    """A page of nodes (without their desired state, as Baetyl)."""


class NodeNames(WireModel):
    """The nodes a batch request is about."""

    names: Annotated[list[NodeName], Field(min_length=1, max_length=BATCH_MAX)]


class NodeBatch(WireModel):
    """The named nodes that exist, in the order asked."""

    total: int
    items: list[NodeView]


class NodeModeRequest(WireModel):
    """Sync mode: `cloud` (the cloud drives the node) or `local`."""

    mode: Literal["cloud", "local"]


class NodeAppItem(WireModel):
    """An app a node receives (Baetyl's application list item)."""

    name: str
    namespace: str
    version: str
    labels: dict[str, str]
    selector: str
    node_selector: str = ""
    description: str = ""
    system: bool
    type: str = ""
    mode: str = ""
    create_time: datetime
    update_time: datetime


class NodeAppList(WireModel):
    """Every app in a node's desired state, system apps included."""

    total: int
    items: list[NodeAppItem]


class NodeFunctions(WireModel):
    """The functions of a node's function apps, as Baetyl lists them: `app/function`."""

    functions: list[str]


class Deploy(WireModel):
    """One app the cloud wants on a node, and how far the node has got with it."""

    name: str
    system: bool
    desired: str
    """The version the cloud wants."""
    running: str = ""
    """The version the node reports running ("" while it reports none)."""
    status: str = ""
    """The node's status of the app (Pending, Running, Failed, …), "" before it reports one."""
    cause: str = ""
    deployed: bool
    """Whether the node runs the wanted version and reports it Running or Succeeded."""


class NodeDeploys(WireModel):
    """`GET /nodes/{name}/deploys`: Baetyl answers `{"success": true}` alone; here the same key
    and the node's deployments."""

    success: bool = True
    total: int
    items: list[Deploy]


def deploys_view(state: NodeState) -> NodeDeploys:
    """Each desired app with the version and status the node reports for it."""
    desired = DesiredState.from_section(state.document["state"][shadow.DESIRED])
    reported = state.document["state"].get(shadow.REPORTED) or {}
    items: list[Deploy] = []
    for system, wanted, running_key, stats_key in (
        (False, desired.apps, "apps", "appstats"),
        (True, desired.sysapps, "sysapps", "sysappstats"),
    ):
        running = _mapping(reported.get(running_key))
        stats = _mapping(reported.get(stats_key))
        for name in sorted(wanted):
            stat = _mapping(stats.get(name))
            version = str(running.get(name) or "")
            status = str(stat.get("status") or "")
            items.append(
                Deploy(
                    name=name,
                    system=system,
                    desired=wanted[name],
                    running=version,
                    status=status,
                    cause=str(stat.get("cause") or ""),
                    deployed=version == wanted[name] and status in ("Running", "Succeeded"),
                )
            )
    return NodeDeploys(total=len(items), items=items)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class InitQuery(WireModel):
    """How the install command should install: backend mode and download tool."""

    mode: NodeMode | None = None
    method: Literal["curl", "wget"] = "curl"


MAX_TAIL_LINES = 10_000
MAX_SINCE_SECONDS = 30 * 24 * 3600


class LogsQuery(WireModel):
    """Which part of an app's log to fetch (Kubernetes' names; both optional)."""

    tail_lines: Annotated[int, Field(ge=1, le=MAX_TAIL_LINES)] | None = None
    since_seconds: Annotated[int, Field(ge=1, le=MAX_SINCE_SECONDS)] | None = None


class InitCommand(WireModel):
    """The command that installs the node."""

    cmd: str


class PropertiesState(WireModel):
    """Node properties: what the cloud wants (`desire`) and what the node reported."""

    report: dict[str, Any] = Field(default_factory=dict)
    desire: dict[str, str] = Field(default_factory=dict)


class PropertiesMeta(WireModel):
    """When each property key was last written (RFC 3339, UTC)."""

    report: dict[str, str] = Field(default_factory=dict)
    desire: dict[str, str] = Field(default_factory=dict)


class NodeProperties(WireModel):
    """Baetyl's node properties document."""

    state: PropertiesState
    metadata: PropertiesMeta


class DesiredProps(WireModel):
    """The desired side of a properties update; `report` is read-only and ignored, as Baetyl."""

    desire: dict[PropKey, str] | None = None
    """None (Baetyl's `{"state": {}}`): the desired properties stay as they are."""
    report: dict[str, Any] | None = None


class NodePropertiesUpdate(WireModel):
    """`{"state": {"desire": {key: string}}}`: the complete desired properties."""

    state: DesiredProps
    metadata: dict[str, Any] | None = None


class ShadowState(WireModel):
    """The sections of a shadow; `delta` is what the node still has to apply."""

    desired: dict[str, Any]
    reported: dict[str, Any]
    delta: dict[str, Any]


class ShadowMetadata(WireModel):
    """`{"timestamp": t}` for every leaf of each writable section."""

    desired: dict[str, Any]
    reported: dict[str, Any]


class ShadowView(WireModel):
    """A full shadow document (DESIGN §5)."""

    state: ShadowState
    metadata: ShadowMetadata
    version: int
    timestamp: float


class DesiredPatch(WireModel):
    """Desired keys the REST API may write: only `nodeprops` (apps come from matching)."""

    nodeprops: dict[PropKey, str | None] | None = None


class ShadowPatchState(WireModel):
    """The section a shadow PATCH writes."""

    desired: DesiredPatch


class ShadowPatch(WireModel):
    """A merge patch of the desired `nodeprops`: objects merge, null deletes a key."""

    state: ShadowPatchState


def app_list(value: object) -> list[AppRef]:
    """A `{name: version}` map as a name-sorted list of `{name, version}`."""
    if not isinstance(value, Mapping):
        return []
    return [AppRef(name=k, version=str(v)) for k, v in sorted(value.items())]


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)}


def rfc3339(epoch: float) -> str:
    """An epoch time as RFC 3339 in UTC, as Baetyl shows times."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def desire_view(state: NodeState) -> DesireView:
    """The desired section as Baetyl shows it."""
    desired = DesiredState.from_section(state.document["state"][shadow.DESIRED])
    return DesireView(
        apps=app_list(desired.apps),
        sysapps=app_list(desired.sysapps),
        nodeprops=dict(desired.nodeprops),
    )


def report_view(state: NodeState) -> dict[str, Any]:
    """The reported section with app maps and app stats as name-sorted lists, plus `time`."""
    section = dict(state.document["state"][shadow.REPORTED])
    for key in APP_SECTIONS:
        if key in section:
            section[key] = [ref.to_wire() for ref in app_list(section[key])]
    for key in ("appstats", "sysappstats"):
        stats = section.get(key)
        if isinstance(stats, dict):
            section[key] = [stats[name] for name in sorted(stats)]
    hosts = section.get("nodestats")
    if isinstance(hosts, dict):
        section["nodestats"] = {host: node_stats_view(stats) for host, stats in hosts.items()}
    if state.report_time is not None:
        section["time"] = rfc3339(state.report_time)
    return section


_VIEW_FIGURES = {"cpu": cores_text, "memory": bytes_text}


def node_stats_view(stats: Any) -> Any:
    """One host's `nodestats` as Baetyl's NodeView shows it, whichever agent version wrote it:
    `cpu` in cores and `memory` in bytes as decimal strings ("250m" → "0.25", "8Gi" → bytes),
    `percent` as fractions (agents before decision 150 wrote numbers from 0 to 100), those of
    cpu and memory computed from usage and capacity where the node gave none, as Baetyl's view
    computes them. Everything else stays as reported."""
    if not isinstance(stats, dict):
        return stats
    shown = dict(stats)
    for side in ("usage", "capacity"):
        figures = stats.get(side)
        if isinstance(figures, dict):
            shown[side] = {key: _view_figure(key, value) for key, value in figures.items()}
    reported = stats.get("percent")
    percent = dict(reported) if isinstance(reported, dict) else {}
    for key, value in percent.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            percent[key] = fraction_text(value, 100)
    usage, capacity = shown.get("usage"), shown.get("capacity")
    for key in _VIEW_FIGURES:
        used = usage.get(key) if isinstance(usage, dict) else None
        whole = capacity.get(key) if isinstance(capacity, dict) else None
        if key not in percent and isinstance(used, str) and isinstance(whole, str):
            percent[key] = fraction_text(quantity_value(used), quantity_value(whole))
    if percent or "percent" in stats:
        shown["percent"] = percent
    return shown


def _view_figure(key: str, value: Any) -> Any:
    render = _VIEW_FIGURES.get(key)
    if render is None or not isinstance(value, str):
        return value
    return render(quantity_value(value))


def node_view(state: NodeState, *, desire: bool = True, report: bool = True) -> NodeView:
    """A NodeView; Baetyl leaves `desire` out of lists and `report` out of a fresh node."""
    record = state.record
    return NodeView(
        namespace=record.namespace,
        name=record.name,
        version=state.version,
        create_time=record.create_time,
        update_time=record.update_time,
        labels=record.labels,
        annotations=state.annotations,
        description=record.description,
        node_mode=record.node_mode,
        sys_apps=state.sys_apps,
        ready=int(state.ready),
        last_seen=None if state.last_seen is None else rfc3339(state.last_seen),
        mode=record.sync_mode,
        desire=desire_view(state) if desire else None,
        report=report_view(state) if report else None,
    )


def properties_view(state: NodeState) -> NodeProperties:
    """Baetyl's node properties document, from the shadow's `nodeprops` and their metadata."""
    doc = state.document

    def stamps(section: str) -> dict[str, str]:
        meta = doc["metadata"][section].get(NODEPROPS)
        if not isinstance(meta, dict):
            return {}
        return {
            key: rfc3339(float(leaf["timestamp"]))
            for key, leaf in meta.items()
            if isinstance(leaf, dict) and isinstance(leaf.get("timestamp"), int | float)
        }

    reported = doc["state"][shadow.REPORTED].get(NODEPROPS)
    return NodeProperties(
        state=PropertiesState(
            report=dict(reported) if isinstance(reported, dict) else {},
            desire=_string_map(doc["state"][shadow.DESIRED].get(NODEPROPS)),
        ),
        metadata=PropertiesMeta(report=stamps(shadow.REPORTED), desire=stamps(shadow.DESIRED)),
    )


def shadow_view(state: NodeState) -> ShadowView:
    """The full shadow document."""
    doc = state.document
    return ShadowView(
        state=ShadowState(**doc["state"]),
        metadata=ShadowMetadata(**doc["metadata"]),
        version=doc["version"],
        timestamp=doc["timestamp"],
    )


def app_item(namespace: str, app: NodeApp) -> NodeAppItem:
    """An app summary as an application list item."""
    spec = app.spec
    return NodeAppItem(
        name=app.name,
        namespace=namespace,
        version=app.version,
        labels=app.labels,
        selector=app.selector,
        node_selector=str(spec.get("nodeSelector") or ""),
        description=str(spec.get("description") or ""),
        system=app.system,
        type=str(spec.get("type") or ""),
        mode=str(spec.get("mode") or ""),
        create_time=app.create_time,
        update_time=app.update_time,
    )
