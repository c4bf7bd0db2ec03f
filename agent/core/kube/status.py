"""What the cluster shows of an app, as the AppStats every backend reports (pure).

An app's status comes from its workload's own status (ready and updated counts, conditions) and
its pods (phase, restart counts, why a container waits). A pod whose container cannot start for a
reason that will not clear by waiting (CrashLoopBackOff, ImagePullBackOff, …) makes the app
Failed with that reason as its cause, so a user sees *why* in the cloud, not just "Pending".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from agent.contracts import cron
from agent.contracts.report import (
    AppStats,
    AppStatus,
    ContainerState,
    CronJobStats,
    InstanceStats,
    Usage,
)
from agent.core.kube.render import APP_LABEL

Manifest = dict[str, Any]

FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PreStartHookError",
        "PostStartHookError",
    }
)
"""Waiting reasons of a container that mean the pod will not run as it is."""

_PHASES = {status.value: status for status in AppStatus}


def pod_stats(pod: Manifest, usage: Usage | None = None) -> InstanceStats:
    """One pod as an instance: phase, summed restarts, the first reason a container is stuck,
    and its usage when the metrics API gave one."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    containers = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    phase = _PHASES.get(str(status.get("phase", "")), AppStatus.UNKNOWN)
    cause = next((c for c in map(_container_cause, containers) if c), "")
    if not cause and phase is AppStatus.PENDING:
        cause = _unscheduled(status)
    if not cause and phase is AppStatus.FAILED:
        cause = str(status.get("message") or status.get("reason") or "")
    spec = pod.get("spec", {})
    names = [c["name"] for c in spec.get("containers", []) if "name" in c]
    return InstanceStats(
        name=str(meta.get("name", "")),
        service_name=names[0] if len(names) == 1 else "",
        status=phase,
        cause=cause,
        pod_name=str(meta.get("name", "")),
        restarts=sum(int(c.get("restartCount", 0)) for c in containers),
        usage=usage or Usage(),
        create_time=_timestamp(meta.get("creationTimestamp")),
        app_name=str(meta.get("labels", {}).get(APP_LABEL, "")),
        ip=str(status.get("podIP") or ""),
        node_name=str(spec.get("nodeName") or ""),
        containers=[_container_state(c) for c in status.get("containerStatuses", [])],
    )


def _container_state(container: Manifest) -> ContainerState:
    """Baetyl's view of one container status: its state's name and reason."""
    state = container.get("state") or {}
    states: tuple[tuple[str, Literal["Waiting", "Running", "Terminated"]], ...] = (
        ("waiting", "Waiting"),
        ("running", "Running"),
        ("terminated", "Terminated"),
    )
    for key, name in states:
        if key in state:
            detail = state[key] or {}
            return ContainerState(
                name=str(container.get("name", "")),
                state=name,
                reason=str(detail.get("reason") or ""),
            )
    return ContainerState(name=str(container.get("name", "")))


def failing(pod: Manifest) -> str:
    """Why a pod cannot run (`container x: CrashLoopBackOff: …`), or "" when it can."""
    status = pod.get("status", {})
    for container in [
        *status.get("initContainerStatuses", []),
        *status.get("containerStatuses", []),
    ]:
        waiting = container.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_REASONS:
            return _container_cause(container)
    return ""


def app_stats(
    name: str,
    version: str,
    workload: Manifest | None,
    pods: Iterable[Manifest],
    usage: Mapping[str, Usage] | None = None,
    *,
    now: datetime | None = None,
) -> AppStats:
    """The app's status from its workload and pods (`workload` None: not created yet); `usage`
    by pod name; `now` (UTC) places a CronJob's next time."""
    live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    found = usage or {}
    instances = {
        stats.name: stats
        for stats in (pod_stats(p, found.get(p["metadata"].get("name", ""))) for p in live)
    }
    if workload is None:
        return AppStats(
            name=name,
            version=version,
            status=AppStatus.PENDING,
            cause="waiting for the workload to be created",
            instances=instances,
        )
    status, cause = _workload_status(workload)
    stuck = next((c for c in map(failing, live) if c), "")
    if stuck and status is not AppStatus.SUCCEEDED:
        pod = next(p for p in live if failing(p))
        status, cause = AppStatus.FAILED, f"pod {pod['metadata']['name']}: {stuck}"
    return AppStats(
        name=name,
        version=version,
        status=status,
        cause=cause,
        instances=instances,
        cron_job=cron_job_stats(workload, now or datetime.now(UTC)),
    )


def cron_job_stats(workload: Manifest, now: datetime) -> CronJobStats | None:
    """A CronJob's schedule and runs as the native backend reports them (`cronJob` in the app's
    stats): Kubernetes' `lastScheduleTime`, `lastSuccessfulTime` and active jobs, and the next
    time of its schedule; None for other workloads."""
    if workload.get("kind") != "CronJob":
        return None
    schedule = str(workload.get("spec", {}).get("schedule", ""))
    status = workload.get("status") or {}
    try:
        upcoming = cron.parse(schedule).next_after(now)
    except cron.CronError:
        upcoming = None
    return CronJobStats(
        schedule=schedule,
        next_schedule_time=upcoming,
        last_schedule_time=_timestamp(status.get("lastScheduleTime")),
        last_successful_time=_timestamp(status.get("lastSuccessfulTime")),
        active=bool(status.get("active")),
    )


def _workload_status(workload: Manifest) -> tuple[AppStatus, str]:
    kind = workload.get("kind")
    meta = workload.get("metadata", {})
    spec = workload.get("spec", {})
    status = workload.get("status", {})
    observed = int(status.get("observedGeneration", 0))
    if kind in ("Deployment", "StatefulSet", "DaemonSet") and observed < int(
        meta.get("generation", 1)
    ):
        return AppStatus.PENDING, "the controller has not seen the latest spec yet"
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    if kind == "Deployment":
        return _deployment_status(spec, status, conditions)
    if kind == "StatefulSet":
        wanted = int(spec.get("replicas", 1))
        updated = status.get("updateRevision") == status.get("currentRevision") or wanted == 0
        ready = int(status.get("readyReplicas", 0))
        if updated and ready >= wanted and int(status.get("replicas", 0)) == wanted:
            return AppStatus.RUNNING, ""
        return AppStatus.PENDING, f"{ready} of {wanted} pods ready"
    if kind == "DaemonSet":
        wanted = int(status.get("desiredNumberScheduled", 0))
        ready = int(status.get("numberReady", 0))
        updated = int(status.get("updatedNumberScheduled", 0))
        if wanted == 0:
            return AppStatus.PENDING, "no node matches the daemon set"
        if ready >= wanted and updated >= wanted:
            return AppStatus.RUNNING, ""
        return AppStatus.PENDING, f"{ready} of {wanted} pods ready"
    if kind == "Job":
        if _true(conditions.get("Complete")):
            return AppStatus.SUCCEEDED, ""
        failed = conditions.get("Failed")
        if _true(failed):
            assert failed is not None
            return AppStatus.FAILED, str(failed.get("message") or failed.get("reason") or "")
        if int(status.get("active", 0)) > 0:
            return AppStatus.RUNNING, ""
        return AppStatus.PENDING, ""
    if kind == "CronJob":
        return AppStatus.RUNNING, ""  # scheduled; its jobs' pods are the instances
    return AppStatus.UNKNOWN, f"unknown workload kind {kind}"


def _deployment_status(
    spec: Manifest, status: Manifest, conditions: Mapping[str, Manifest]
) -> tuple[AppStatus, str]:
    wanted = int(spec.get("replicas", 1))
    progressing = conditions.get("Progressing", {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return AppStatus.FAILED, str(progressing.get("message", "the rollout did not progress"))
    failure = conditions.get("ReplicaFailure")
    if _true(failure):
        assert failure is not None
        return AppStatus.FAILED, str(failure.get("message") or failure.get("reason") or "")
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    if updated >= wanted and available >= wanted and total == wanted:
        return AppStatus.RUNNING, ""
    if updated < wanted or total > wanted:
        return AppStatus.PENDING, f"rolling out: {updated} of {wanted} pods updated"
    return AppStatus.PENDING, f"{available} of {wanted} pods available"


def _container_cause(container: Manifest) -> str:
    state = container.get("state", {})
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    if reason and reason not in ("ContainerCreating", "PodInitializing"):
        message = waiting.get("message", "")
        return f"container {container.get('name')}: {reason}" + (f": {message}" if message else "")
    terminated = state.get("terminated") or {}
    if terminated and int(terminated.get("exitCode", 0)) != 0:
        reason = terminated.get("reason") or "Error"
        return f"container {container.get('name')}: {reason} (exit {terminated.get('exitCode')})"
    return ""


def _unscheduled(status: Manifest) -> str:
    for condition in status.get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "not scheduled")
    return ""


def _true(condition: Manifest | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
