"""`KubeBackend`: the Backend of agent.core.backend on a Kubernetes (or K3s) node (DESIGN §8).

Apps are rendered (`render`) and applied with server-side apply, so an update rolls instead of
deleting and recreating; objects an app no longer needs, and the apps removed, are pruned by
label. Status comes from watches (`watch`), never polling; drift — a deleted or edited object —
is repaired by applying the last render again: at once when a watched object of an app is deleted,
and every `repair_interval` for edits. The deployments applied are kept (`records`), so an agent
restart renders the same objects and touches nothing that runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.contracts import names, spec_rules
from agent.contracts.kit.aiotasks import Tasks
from agent.contracts.report import AppStats, NodeInfo, Usage
from agent.contracts.resources import HostPathVolume, Service, Volume
from agent.core import functions
from agent.core.backend import (
    DeployError,
    Deployment,
    NodeFacts,
    NodeIdentity,
    StatusListener,
    StatusNotifier,
)
from agent.core.kube import render as rendering
from agent.core.kube import status, usage
from agent.core.kube.client import KubeApi, KubeError, ObjectRef
from agent.core.kube.records import AppRecords
from agent.core.kube.watch import WatchedKind
from agent.core.objects import config_tree
from agent.core.registry import INDEX_FILE, FunctionIndex, Registry, RegistryFile

log = logging.getLogger(__name__)
Manifest = dict[str, Any]

WATCHED_KINDS = ("Pod", "Service", *rendering.WORKLOAD_KINDS)
NAMESPACES = (rendering.USER_NAMESPACE, rendering.SYSTEM_NAMESPACE)
SHARED_KINDS = ("ConfigMap", "Secret")  # named after the resource; apps of a namespace share them
MANAGED_SELECTOR = f"{rendering.MANAGED_LABEL}=true"
LOGS_READ_LIMIT = 1024 * 1024
"""Most log text one `logs` call returns (newest kept): it travels in one MQTT message."""
NODE_FACTS_TTL = 15.0
METRICS_INTERVAL = 15.0
"""Seconds between two reads of the metrics API (metrics-server itself samples every 15 s)."""
NO_METRICS_RETRY = 300.0
"""Seconds before asking again a cluster that served no metrics API."""
CLOSE_GRACE = 2.5
START_DETECT_TIMEOUT = 5.0
"""How long `start` waits for the server's version before watching (seconds)."""
START_SYNC_TIMEOUT = 10.0
"""How long the first repair pass waits for the watches' first lists (seconds)."""
NODE_NAME_ENV = "KUBE_NODE_NAME"


@dataclass(frozen=True)
class KubeSettings:
    """Where the API server is and where the backend keeps its bookkeeping."""

    state_dir: Path
    kubeconfig: Path | None = None
    """None: the pod's service account (in-cluster)."""
    node_name: str = ""
    """The Node the agent reports on; "" = $KUBE_NODE_NAME, else the only node there is."""
    repair_interval: float = 30.0
    function_image: str = functions.DEFAULT_IMAGE
    """The image function runtimes run in: the agent's, which holds `function_proxy`."""
    function_address: str = "127.0.0.1:50011"
    """Where the function proxy serves on the node (given to functions to call others)."""
    registry_file: Path | None = None
    """Where the function apps' Services are published for the proxy (docs/functions.md)."""
    objects_dir: Path | None = None
    """The object cache: a configuration with object items is mounted from a directory made
    there (agent.core.objects.config_tree), not from a ConfigMap."""
    objects_host_dir: Path | None = None
    """Where `objects_dir` is on the node (when the agent runs in a pod); None: the same."""


class KubeBackend:
    """Runs apps as Kubernetes workloads; see docs/kubernetes.md.

    Call `start()` first, `close()` last; workloads run on whatever the agent does.
    """

    def __init__(
        self, identity: NodeIdentity, settings: KubeSettings, api: KubeApi | None = None
    ) -> None:
        self.identity = identity
        self.settings = settings
        self._api = api
        self._records = AppRecords(settings.state_dir)
        self._apps: dict[str, Deployment] = {}
        self._capabilities = rendering.Capabilities()
        self._version: Manifest = {}
        self._watched: dict[tuple[str, str], WatchedKind] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._namespaces: set[str] = set()
        self._notifier = StatusNotifier(lambda: _signature(self.observe()))
        self._tasks = Tasks("kube backend", logger=log)
        self._running = False
        self._repair_wake = asyncio.Event()
        self._repair_failures: dict[str, tuple[str, str]] = {}
        self._node: tuple[float, NodeFacts | None] | None = None
        self.repairs = 0
        """Objects found changed or missing and applied again (tests and metrics read it)."""
        self._usage: dict[str, dict[str, Usage]] = {}
        """Pod usage by namespace and pod name, from the metrics API."""
        self.metrics: bool | None = None
        """Whether the cluster serves the metrics API (None: not asked yet)."""
        self.repair_passes = 0
        """Repair passes over every app completed (the first one runs at start)."""
        registry = settings.registry_file
        self._registry = None if registry is None else RegistryFile(registry)
        self._index = None if registry is None else RegistryFile(registry.with_name(INDEX_FILE))
        self._registry_wake = asyncio.Event()

    @property
    def api(self) -> KubeApi:
        """The API connection (after `start`)."""
        assert self._api is not None, "KubeBackend.start() must be awaited first"
        return self._api

    # -- Backend -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, start the watches and re-apply what was applied before (a no-op if unchanged).

        The API server need not be reachable: watches and the repair retry until it is.
        """
        if self._running:
            return
        self._apps = await asyncio.to_thread(self._records.load)
        if self._api is None:
            try:
                self._api = await KubeApi.connect(self.settings.kubeconfig)
            except KubeError as exc:
                raise RuntimeError(str(exc)) from exc
        # Before the watches: a CronJob watch at the wrong version fails until the repair loop
        # knows the server's. Bounded, since the API server may be away (the loop asks again).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._detect_capabilities(), START_DETECT_TIMEOUT)
        for namespace in NAMESPACES:
            for kind in WATCHED_KINDS:
                watched = WatchedKind(
                    self.api,
                    kind,
                    namespace,
                    MANAGED_SELECTOR,
                    self._event,
                    api_version=self._cronjob_api if kind == "CronJob" else None,
                )
                self._watched[(kind, namespace)] = watched
                self._tasks.spawn(watched.run(), f"kube:watch:{namespace}:{kind}")
        self._running = True
        self._tasks.spawn(self._repair_loop(), "kube:repair")
        if self._registry is not None:
            self._tasks.spawn(self._registry_loop(), "kube:registry")
        self._tasks.spawn(self._metrics_loop(), "kube:metrics")
        log.info("kube backend started", extra={"apps": len(self._apps), "api": self.api.host})

    async def apply(self, deployment: Deployment) -> None:
        """Apply every object of `deployment`, then prune what its previous version left."""
        self._require_running()
        # A function app's services run the function runtime in the agent's image.
        deployment = functions.runnable(
            deployment,
            functions.IMAGE_PYTHON,
            proxy_address=self.settings.function_address,
            kube=functions.KubeRuntime(self.settings.function_image),
        )
        deployment = await asyncio.to_thread(self._with_object_volumes, deployment)
        check(deployment)
        name = deployment.name
        async with self._locks[name]:
            await self._detect_capabilities()
            try:
                rendered = rendering.render(deployment, self.identity, self._capabilities)
            except (KeyError, ValueError) as exc:
                raise DeployError(f"cannot render the app for Kubernetes: {exc}") from exc
            await self._apply_objects(rendered, repair=False)
            previous = self._apps.get(name)
            self._apps[name] = deployment
            self._repair_failures.pop(name, None)
            await self._save_records()
            if previous is None or previous != deployment:
                log.info("applied an app", extra={"app": name, "version": deployment.version})
            await self._prune_app(name, rendered)
            if previous is not None and _shared(previous) - _shared(deployment):
                await self._prune_shared()  # only what the previous version mounted can be left
        self.changed()

    async def remove(self, app: str) -> None:
        """Delete every object of `app` (its pods end with their grace period)."""
        self._require_running()
        async with self._locks[app]:
            had = self._apps.pop(app, None)
            self._repair_failures.pop(app, None)
            if had is not None:
                await self._save_records()
            self.changed()
            for ref in self._objects_of(app):
                await self._delete(ref)
            await self._prune_shared()
        log.info("removed an app", extra={"app": app})
        self.changed()

    def observe(self) -> dict[str, AppStats]:
        """AppStats by app name, from the watched objects (the last known while offline)."""
        result: dict[str, AppStats] = {}
        for name, deployment in self._apps.items():
            namespace = rendering.namespace_of(deployment.app)
            workload = self._workload(name, namespace, deployment)
            result[name] = status.app_stats(
                name,
                deployment.version,
                workload,
                self._pods(name, namespace),
                self._usage.get(namespace),
            )
        for (kind, namespace), watched in self._watched.items():
            if kind not in rendering.WORKLOAD_KINDS:
                continue
            for manifest in watched.objects.values():
                meta = manifest["metadata"]
                name = meta.get("labels", {}).get(rendering.APP_LABEL)
                if not name or name in result or meta.get("deletionTimestamp"):
                    continue
                # Left by an agent whose bookkeeping is gone: reported, so the engine removes it
                # or leaves it at that version.
                version = meta.get("annotations", {}).get(rendering.VERSION_ANNOTATION, "")
                result[name] = status.app_stats(
                    name, version, manifest, self._pods(name, namespace), self._usage.get(namespace)
                )
        return result

    def rollout_failures(self) -> dict[str, tuple[str, str]]:
        """Apps whose repair the API server refused as invalid: name → (version, cause)."""
        return dict(self._repair_failures)

    def on_change(self, listener: StatusListener) -> None:
        """Call `listener` (from the event loop) whenever an app's status changes."""
        self._notifier.add(listener)

    async def logs(self, app: str, *, tail_lines: int | None, since_seconds: int | None) -> str:
        """Each container's log of each pod of `app`, under a `==> pod/container <==` line."""
        deployment = self._apps.get(app)
        if deployment is None:
            raise KeyError(app)
        namespace = rendering.namespace_of(deployment.app)
        pods = sorted(
            self._pods(app, namespace),
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        )
        parts = []
        for pod in pods:
            spec = pod.get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                pod_name, container_name = pod["metadata"]["name"], container["name"]
                try:
                    text = await self.api.logs(
                        namespace,
                        pod_name,
                        container_name,
                        tail_lines=tail_lines,
                        since_seconds=since_seconds,
                    )
                except KubeError as exc:
                    text = f"(no log: {exc})\n"
                parts.append(f"==> {pod_name}/{container_name} <==\n{text}")
        joined = "".join(parts)
        return joined[-LOGS_READ_LIMIT:]

    async def node_facts(self) -> NodeFacts | None:
        """The Node's info, readiness and capacity, and `/version` as modeinfo (cached 15 s)."""
        loop = asyncio.get_running_loop()
        if self._node is not None and loop.time() - self._node[0] < NODE_FACTS_TTL:
            return self._node[1]
        facts = None
        try:
            node = await self._find_node()
            if node is not None:
                await self._detect_capabilities()
                facts = node_facts(node, self._version)
        except KubeError as exc:
            log.debug("node facts unavailable", extra={"error": str(exc)})
            if self._node is not None:
                return self._node[1]  # the last known, while the API server is away
        self._node = (loop.time(), facts)
        return facts

    async def close(self) -> None:
        """Stop watching; every workload keeps running."""
        if not self._running:
            return
        self._running = False
        await self._tasks.stop(grace=CLOSE_GRACE)
        self._notifier.close()
        if self._api is not None:
            await self._api.close()
        log.info("kube backend closed; workloads left running")

    # -- status notifications ---------------------------------------------------------------

    def changed(self) -> None:
        """Something observable may have changed: tell the listeners soon if it did."""
        self._notifier.changed()
        self._registry_wake.set()

    def _with_object_volumes(self, deployment: Deployment) -> Deployment:
        """Config volumes whose configuration has object items become read-only hostPath
        volumes of a directory assembled in the object cache. Blocking."""
        app = deployment.app
        root = self.settings.objects_dir
        moved: dict[str, str] = {}
        configs = dict(deployment.configs)
        volumes = []
        for volume in app.volumes:
            config = None if volume.config is None else configs.get(volume.config.name)
            if config is None or not config.object_items():
                volumes.append(volume)
                continue
            if root is None:
                raise DeployError(f"app {app.name!r}: configuration {config.name!r} has object "
                                  "items and this node has no object cache")  # fmt: skip
            tree = config_tree(root, config)
            host = (self.settings.objects_host_dir or root) / tree.relative_to(root)
            moved[volume.name] = config.name
            volumes.append(
                Volume(name=volume.name, host_path=HostPathVolume(path=str(host), type="Directory"))
            )
        if not moved:
            return deployment

        def read_only(service: Service) -> Service:
            mounts = [
                m.model_copy(update={"read_only": True}) if m.name in moved else m
                for m in service.volume_mounts
            ]
            return service.model_copy(update={"volume_mounts": mounts})

        still = {v.config.name for v in volumes if v.config is not None}
        for name in set(moved.values()) - still:
            configs.pop(name, None)
        expanded = app.model_copy(
            update={
                "volumes": volumes,
                "services": [read_only(s) for s in app.services],
                "init_services": [read_only(s) for s in app.init_services],
            }
        )
        return Deployment(expanded, configs, deployment.secrets)

    # -- the function proxy's registry ------------------------------------------------------

    def function_registry(self) -> tuple[Registry, FunctionIndex]:
        """The function apps' runtimes as the proxy reads them: `{app: {service: [clusterIP:port]}}`
        (a service listed once a pod of the app is ready) and `{app: {function: service}}`."""
        registry: Registry = {}
        index: FunctionIndex = {}
        for name, deployment in sorted(self._apps.items()):
            app = deployment.app
            if app.type != "function":
                continue
            index[name] = app.function_services()
            namespace = rendering.namespace_of(app)
            watched = self._watched.get(("Service", namespace))
            found = (
                None
                if watched is None
                else watched.objects.get(rendering.service_object_name(name))
            )
            address = (found or {}).get("spec", {}).get("clusterIP")
            if (
                not address
                or address == "None"
                or not any(map(_ready, self._pods(name, namespace)))
            ):
                continue
            for service in app.services:
                if service.function_config is not None:
                    port = functions.runtime_port(app, service.name)
                    registry.setdefault(name, {})[service.name] = [f"{address}:{port}"]
        return registry, index

    async def _registry_loop(self) -> None:
        """Rewrite the registry and the index whenever something changed (when they differ)."""
        assert self._registry is not None
        assert self._index is not None
        while True:
            await self._registry_wake.wait()
            self._registry_wake.clear()
            registry, index = self.function_registry()
            try:
                await asyncio.to_thread(self._index.write, index)
                await asyncio.to_thread(self._registry.write, registry)
            except OSError as exc:
                log.warning("cannot write the function registry", extra={"error": str(exc)})

    def _event(self, kind: str, manifest: Manifest) -> None:
        """A watch saw something: maybe a status change, maybe drift to repair at once."""
        self.changed()
        if kind != "DELETED" or not self._running:
            return
        name = manifest.get("metadata", {}).get("labels", {}).get(rendering.APP_LABEL)
        if name in self._apps and manifest.get("kind") != "Pod":
            self._repair_wake.set()

    # -- applying ---------------------------------------------------------------------------

    async def _apply_objects(self, rendered: rendering.Rendered, *, repair: bool) -> None:
        """Apply each object in order; DeployError names the first one refused."""
        for manifest in rendered.objects:
            kind = manifest["kind"]
            if kind == "Namespace":
                await self._ensure_namespace(manifest)
                continue
            ref = ObjectRef.of(manifest)
            watched = self._watched.get((kind, rendered.namespace))
            before = None if watched is None else watched.objects.get(ref.name)
            try:
                answer = await self.api.apply(manifest)
            except KubeError as exc:
                raise DeployError(f"{kind} {ref.name}: {exc}") from exc
            if watched is not None:
                # Drift is told against a listed cache only (an unlisted one knows nothing).
                if repair and watched.synced.is_set() and _drifted(before, answer):
                    self.repairs += 1
                    log.warning(
                        "repaired drift",
                        extra={"kind": kind, "object": ref.name, "missing": before is None},
                    )
                watched.put(answer)

    async def _ensure_namespace(self, manifest: Manifest) -> None:
        """Create the namespace once if it is missing (the install manifest usually did)."""
        name = manifest["metadata"]["name"]
        if name in self._namespaces:
            return
        try:
            if await self.api.get(ObjectRef("v1", "Namespace", None, name)) is None:
                await self.api.apply(manifest)
        except KubeError as exc:
            raise DeployError(f"namespace {name}: {exc}") from exc
        self._namespaces.add(name)

    def _cronjob_api(self) -> str:
        return self._capabilities.cronjob_api

    async def _detect_capabilities(self) -> None:
        """Read the server's version once (CronJobs are batch/v1beta1 before 1.21)."""
        if self._version:
            return
        try:
            self._version = await self.api.version()
        except KubeError:
            return
        minor = "".join(ch for ch in str(self._version.get("minor", "")) if ch.isdigit())
        if minor and int(minor) < 21 and str(self._version.get("major")) == "1":
            self._capabilities = rendering.Capabilities(cronjob_api="batch/v1beta1")

    async def _repair_loop(self) -> None:
        """Apply every app's last render again: at start, on a deletion, every interval.

        The first pass waits (boundedly) for the watches' first lists: before them, the cache
        holds nothing and every object would look missing, a repair that changed nothing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(w.synced.wait() for w in self._watched.values())),
                START_SYNC_TIMEOUT,
            )
        while True:
            self._repair_wake.clear()
            await self._detect_capabilities()  # also without apps: the CronJob watches need it
            for name in list(self._apps):
                await self._repair(name)
            self.repair_passes += 1
            if self.repair_passes == 1:
                log.info(
                    "first repair pass done",
                    extra={"apps": len(self._apps), "repaired": self.repairs},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._repair_wake.wait(), self.settings.repair_interval)

    async def _repair(self, name: str) -> None:
        async with self._locks[name]:
            deployment = self._apps.get(name)
            if deployment is None:
                return
            await self._detect_capabilities()
            rendered = rendering.render(deployment, self.identity, self._capabilities)
            try:
                await self._apply_objects(rendered, repair=True)
            except DeployError as exc:
                cause = exc.__cause__
                if isinstance(cause, KubeError) and cause.invalid:
                    self._repair_failures[name] = (deployment.version, str(exc))
                    self.changed()
                log.warning("could not repair an app", extra={"app": name, "error": str(exc)})
                return
            self._repair_failures.pop(name, None)

    async def _metrics_loop(self) -> None:
        """Read the pods' usage from the metrics API; where there is none, ask again rarely."""
        while True:
            try:
                for namespace in NAMESPACES:
                    answer = await self.api.request(
                        "GET",
                        usage.METRICS_PATH.format(namespace=namespace),
                        query={"labelSelector": MANAGED_SELECTOR},
                    )
                    self._usage[namespace] = {
                        item["metadata"]["name"]: usage.pod_usage(item)
                        for item in answer.get("items", [])
                    }
            except KubeError as exc:
                if exc.status == 0:  # the API server is away: the last figures stand
                    await asyncio.sleep(METRICS_INTERVAL)
                    continue
                if self.metrics is not False:
                    log.info(
                        "no pod usage: the cluster serves no metrics API to this agent",
                        extra={"error": str(exc)},
                    )
                self.metrics = False
                self._usage.clear()
                await asyncio.sleep(NO_METRICS_RETRY)
                continue
            self.metrics = True
            await asyncio.sleep(METRICS_INTERVAL)

    async def _save_records(self) -> None:
        """Write the bookkeeping; a full disk is logged, never a failed apply or remove (the
        cluster holds the truth; the record only lets a restart repair at once)."""
        try:
            await asyncio.to_thread(self._records.save, dict(self._apps))
        except OSError as exc:
            log.warning("could not write the kube bookkeeping", extra={"error": str(exc)})

    # -- pruning ----------------------------------------------------------------------------

    def _objects_of(self, app: str) -> Iterator[ObjectRef]:
        """The watched objects labelled as `app`'s (pods excepted: their owners go)."""
        for (kind, namespace), watched in self._watched.items():
            if kind == "Pod":
                continue
            for manifest in list(watched.objects.values()):
                if manifest["metadata"].get("labels", {}).get(rendering.APP_LABEL) == app:
                    yield ObjectRef(
                        manifest["apiVersion"], kind, namespace, manifest["metadata"]["name"]
                    )

    async def _prune_app(self, app: str, rendered: rendering.Rendered) -> None:
        """Delete the app's objects the new render lacks (an old Job, a dropped Service)."""
        keep = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in rendered.objects
        }
        for ref in list(self._objects_of(app)):
            if (ref.kind, ref.namespace, ref.name) not in keep:
                await self._delete(ref)

    async def _prune_shared(self) -> None:
        """Delete managed ConfigMaps and Secrets that no remaining app mounts."""
        wanted = set().union(*(_shared(deployment) for deployment in self._apps.values()))
        for namespace in NAMESPACES:
            for kind in SHARED_KINDS:
                try:
                    found = await self.api.list(kind, namespace, selector=MANAGED_SELECTOR)
                except KubeError as exc:
                    log.warning("could not list for pruning", extra={"error": str(exc)})
                    return
                for item in found.get("items", []):
                    name = item["metadata"]["name"]
                    if (kind, namespace, name) not in wanted:
                        await self._delete(ObjectRef("v1", kind, namespace, name))

    async def _delete(self, ref: ObjectRef) -> None:
        try:
            await self.api.delete(ref)
        except KubeError as exc:
            log.warning(
                "could not delete an object",
                extra={"kind": ref.kind, "object": ref.name, "error": str(exc)},
            )
            return
        watched = self._watched.get((ref.kind, ref.namespace or ""))
        if watched is not None:
            watched.objects.pop(ref.name, None)
        log.info("deleted an object", extra={"kind": ref.kind, "object": ref.name})

    # -- reading the watched objects -----------------------------------------------------------

    def _workload(self, app: str, namespace: str, deployment: Deployment) -> Manifest | None:
        kind = rendering.workload_kind(deployment.app)
        watched = self._watched.get((kind, namespace))
        if watched is None:
            return None
        name = rendering.job_name(deployment.app) if kind == "Job" else app
        return watched.objects.get(name)

    def _pods(self, app: str, namespace: str) -> list[Manifest]:
        watched = self._watched.get(("Pod", namespace))
        if watched is None:
            return []
        return [
            pod
            for pod in watched.objects.values()
            if pod["metadata"].get("labels", {}).get(rendering.APP_LABEL) == app
        ]

    async def _find_node(self) -> Manifest | None:
        name = self.settings.node_name or os.environ.get(NODE_NAME_ENV, "")
        if name:
            return await self.api.get(ObjectRef("v1", "Node", None, name))
        nodes = (await self.api.list("Node", None)).get("items", [])
        return nodes[0] if len(nodes) == 1 else None

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("KubeBackend.start() must be awaited first (or it was closed)")


def check(deployment: Deployment) -> None:
    """Refuse, before anything is applied, an app no Kubernetes node can run as it is."""
    app = deployment.app
    try:
        spec_rules.check(app)
    except spec_rules.SpecError as exc:
        raise DeployError(str(exc)) from None
    for service in [*app.init_services, *app.services]:
        if not service.image:
            raise DeployError(
                f"app {app.name!r} service {service.name!r}: a kube node runs images, and this "
                "service has none (a native app, mode: native, runs on native nodes)"
            )


def _drifted(before: Manifest | None, answer: Manifest) -> bool:
    """Whether applying changed the object: it was missing, or the server stored a new version
    of it. A workload's status moves its resourceVersion all the time (a watched copy is often
    a little behind), so for objects with a `generation` only a new generation counts."""
    if before is None:
        return True
    old, new = before["metadata"], answer["metadata"]
    key = "generation" if "generation" in new else "resourceVersion"
    return bool(old.get(key) != new.get(key))


def _ready(pod: Manifest) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_facts(node: Manifest, version: Manifest) -> NodeFacts:
    """NodeFacts from a Node object and the server's `/version`."""
    meta = node.get("metadata", {})
    status_ = node.get("status", {})
    info = status_.get("nodeInfo", {})
    addresses = {a.get("type"): a.get("address", "") for a in status_.get("addresses", [])}
    labels = dict(meta.get("labels", {}))
    roles = {k.rsplit("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
    role = "master" if roles & {"master", "control-plane"} else "worker"
    conditions = {
        str(c.get("type")): c.get("status") == "True"
        for c in status_.get("conditions", [])
        if c.get("status") in ("True", "False")
    }
    capacity = status_.get("capacity", {})
    return NodeFacts(
        info=NodeInfo(
            hostname=addresses.get("Hostname") or str(meta.get("name", "")),
            address=addresses.get("InternalIP", ""),
            arch=str(info.get("architecture", "")),
            os=str(info.get("operatingSystem", "")),
            kernel_ver=str(info.get("kernelVersion", "")),
            os_image=str(info.get("osImage", "")),
            machine_id=str(info.get("machineID", "")),
            boot_id=str(info.get("bootID", "")),
            system_uuid=str(info.get("systemUUID", "")),
            container_runtime=str(info.get("containerRuntimeVersion", "")),
            role=role,
            labels=_valid_labels(labels),
        ),
        ready=conditions.get("Ready", False),
        capacity={
            "cpu": str(capacity.get("cpu", "0")),
            "memory": str(capacity.get("memory", "0")),
            "disk": str(capacity.get("ephemeral-storage", "0")),
        },
        modeinfo=dict(version),
        conditions=conditions,
    )


def _valid_labels(labels: dict[str, str]) -> dict[str, str]:
    """The node's labels that are valid report labels (all, on any ordinary node)."""
    kept = {}
    for key, value in labels.items():
        with contextlib.suppress(names.InvalidName):
            names.check_labels({key: value})
            kept[key] = value
    return kept


def _shared(deployment: Deployment) -> set[tuple[str, str, str]]:
    """The ConfigMaps and Secrets a deployment's render holds: (kind, namespace, name)."""
    namespace = rendering.namespace_of(deployment.app)
    return {("ConfigMap", namespace, name) for name in deployment.configs} | {
        ("Secret", namespace, name) for name in deployment.secrets
    }


def _signature(observed: dict[str, AppStats]) -> object:
    """What listeners care about: statuses, causes, restarts (not usage)."""
    return tuple(
        (
            name,
            stats.version,
            stats.status,
            stats.cause,
            tuple(
                (key, i.status, i.cause, i.restarts) for key, i in sorted(stats.instances.items())
            ),
        )
        for name, stats in sorted(observed.items())
    )
