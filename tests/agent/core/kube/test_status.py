"""Status, node facts and bookkeeping of the kube backend, from hand-made objects (pure rules;
the same rules meet the real cluster in test_backend.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.report import AppStatus
from agent.contracts.resources import Application, Configuration
from agent.core.backend import Deployment
from agent.core.kube.backend import node_facts
from agent.core.kube.records import AppRecords
from agent.core.kube.status import app_stats, pod_stats
from agent.core.kube.usage import pod_usage

Manifest = dict[str, Any]


def deployment(wanted: int = 2, **status: Any) -> Manifest:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": 3},
        "spec": {"replicas": wanted},
        "status": {"observedGeneration": 3, **status},
    }


def pod(name: str, phase: str = "Running", **container: Any) -> Manifest:
    state = container.pop("state", {"running": {}})
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-12-04T05:00:00Z"},
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "main", "state": state, **container}],
        },
    }


@pytest.mark.parametrize(
    ("status", "expected", "cause"),
    [
        ({"updatedReplicas": 2, "availableReplicas": 2, "replicas": 2}, "Running", ""),
        (
            {"updatedReplicas": 1, "availableReplicas": 2, "replicas": 3},
            "Pending",
            "rolling out: 1 of 2 pods updated",
        ),
        (
            {"updatedReplicas": 2, "availableReplicas": 1, "replicas": 2},
            "Pending",
            "1 of 2 pods available",
        ),
        (
            {
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "took too long",
                    }
                ]
            },
            "Failed",
            "took too long",
        ),
        (
            {"conditions": [{"type": "ReplicaFailure", "status": "True", "message": "quota"}]},
            "Failed",
            "quota",
        ),
    ],
)
def test_a_deployments_status_is_its_own(status: Manifest, expected: str, cause: str) -> None:
    stats = app_stats("web", "7", deployment(**status), [])
    assert (stats.status, stats.cause) == (AppStatus(expected), cause)
    assert stats.version == "7"


def test_an_unseen_generation_is_pending_whatever_the_counts_say() -> None:
    stale = deployment(updatedReplicas=2, availableReplicas=2, replicas=2)
    stale["metadata"]["generation"] = 4
    assert app_stats("web", "7", stale, []).status is AppStatus.PENDING


def test_a_stuck_container_fails_the_app_with_its_reason_and_restarts_are_summed() -> None:
    crashing = pod(
        "web-1",
        restartCount=4,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
    )
    crashing["status"]["initContainerStatuses"] = [
        {"name": "init", "state": {"terminated": {"exitCode": 0}}, "restartCount": 1}
    ]
    running = deployment(updatedReplicas=2, availableReplicas=1, replicas=2)
    stats = app_stats("web", "7", running, [crashing, pod("web-2")])
    assert stats.status is AppStatus.FAILED
    assert stats.cause == "pod web-1: container main: CrashLoopBackOff: back-off 40s"
    assert stats.instances["web-1"].restarts == 5
    assert stats.instances["web-1"].cause == "container main: CrashLoopBackOff: back-off 40s"
    assert stats.instances["web-2"].status is AppStatus.RUNNING
    assert stats.instances["web-2"].service_name == "main"


def test_a_creating_container_is_no_cause_and_a_terminating_pod_no_instance() -> None:
    creating = pod("web-1", "Pending", state={"waiting": {"reason": "ContainerCreating"}})
    leaving = pod("web-0")
    leaving["metadata"]["deletionTimestamp"] = "2026-12-04T05:01:00Z"
    stats = app_stats("web", "7", deployment(), [creating, leaving])
    assert list(stats.instances) == ["web-1"]
    assert stats.instances["web-1"].cause == ""
    assert stats.status is AppStatus.PENDING


def test_an_unscheduled_pod_says_why() -> None:
    waiting = pod("web-1", "Pending")
    waiting["status"]["containerStatuses"] = []
    waiting["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available"}
    ]
    assert pod_stats(waiting).cause == "0/1 nodes are available"


@pytest.mark.parametrize(
    ("conditions", "active", "expected"),
    [
        ([{"type": "Complete", "status": "True"}], 0, "Succeeded"),
        ([{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}], 0, "Failed"),
        ([], 1, "Running"),
        ([], 0, "Pending"),
    ],
)
def test_a_jobs_status(conditions: list[Manifest], active: int, expected: str) -> None:
    job = {"kind": "Job", "metadata": {}, "spec": {}, "status": {"conditions": conditions}}
    job["status"]["active"] = active
    assert app_stats("once", "1", job, []).status is AppStatus(expected)


def test_a_missing_workload_is_pending_and_a_daemon_set_without_nodes_says_so() -> None:
    assert app_stats("x", "1", None, []).cause == "waiting for the workload to be created"
    daemon = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 0},
    }
    assert app_stats("x", "1", daemon, []).cause == "no node matches the daemon set"


def test_pod_usage_from_the_metrics_api_is_summed_over_containers_and_reported() -> None:
    metrics = {
        "metadata": {"name": "web-1"},
        "containers": [
            {"name": "main", "usage": {"cpu": "2500000n", "memory": "10240Ki"}},
            {"name": "side", "usage": {"cpu": "1m", "memory": "6Mi"}},
        ],
    }
    used = pod_usage(metrics)
    assert (used.cpu, used.memory) == ("4m", "16Mi")
    stats = app_stats("web", "7", deployment(), [pod("web-1"), pod("web-2")], {"web-1": used})
    assert stats.instances["web-1"].usage == used
    assert (stats.instances["web-2"].usage.cpu, stats.instances["web-2"].usage.memory) == ("0", "0")


def test_node_facts_from_a_node_object() -> None:
    node = {
        "metadata": {
            "name": "k3s-1",
            "labels": {"node-role.kubernetes.io/control-plane": "", "bad label!": "x"},
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.5"},
                {"type": "Hostname", "address": "edge-box"},
            ],
            "nodeInfo": {
                "architecture": "arm64",
                "operatingSystem": "linux",
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12",
                "machineID": "m",
                "bootID": "b",
                "systemUUID": "u",
                "containerRuntimeVersion": "containerd://1.6.20",
            },
            "capacity": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "64Gi"},
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PIDPressure", "status": "Unknown"},
            ],
        },
    }
    facts = node_facts(node, {"gitVersion": "v1.27.4+k3s1"})
    assert facts.info.hostname == "edge-box"
    assert facts.info.address == "10.0.0.5"
    assert facts.info.role == "master"
    assert facts.info.arch == "arm64"
    assert (facts.info.system_uuid, facts.info.container_runtime) == ("u", "containerd://1.6.20")
    assert facts.info.labels == {"node-role.kubernetes.io/control-plane": ""}
    assert facts.ready
    assert facts.capacity == {"cpu": "4", "memory": "8Gi", "disk": "64Gi"}
    assert facts.conditions == {"Ready": True, "DiskPressure": False}
    assert facts.modeinfo == {"gitVersion": "v1.27.4+k3s1"}


def test_records_round_trip_and_a_malformed_entry_is_skipped(tmp_path: Path) -> None:
    records = AppRecords(tmp_path / "kube")
    app = Application.model_validate(
        {
            "name": "web",
            "version": "2",
            "volumes": [{"name": "conf", "config": {"name": "conf", "version": "5"}}],
            "services": [{"name": "main", "image": "busybox"}],
        }
    )
    config = Configuration(name="conf", version="5", data={"k": "v"})
    records.save({"web": Deployment(app, {"conf": config})})
    assert oct(records.path.stat().st_mode & 0o777) == "0o600"
    raw = json.loads(records.path.read_text())
    raw["apps"]["broken"] = {"app": {"name": "BAD NAME"}}
    records.path.write_text(json.dumps(raw))
    loaded = records.load()
    assert list(loaded) == ["web"]
    assert loaded["web"].configs["conf"].data == {"k": "v"}
    records.path.write_text("{not json")
    assert records.load() == {}


def test_a_pod_instance_carries_baetyls_instance_keys() -> None:
    pod = {
        "metadata": {"name": "web-5d9-x2", "labels": {"baetyl-app-name": "web"}},
        "spec": {"nodeName": "edge-box", "containers": [{"name": "main"}, {"name": "side"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.42.0.7",
            "containerStatuses": [
                {"name": "main", "restartCount": 1, "state": {"running": {}}},
                {"name": "side", "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
        },
    }  # fmt: skip
    wire = pod_stats(pod).to_wire()
    assert (wire["appName"], wire["ip"], wire["nodeName"]) == ("web", "10.42.0.7", "edge-box")
    assert wire["containers"] == [
        {"name": "main", "state": "Running", "reason": ""},
        {"name": "side", "state": "Waiting", "reason": "ContainerCreating"},
    ]


def test_a_cron_job_reports_its_schedule_its_runs_and_its_next_time() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    workload = {
        "kind": "CronJob",
        "metadata": {"name": "nightly", "generation": 1},
        "spec": {"schedule": "30 2 * * *"},
        "status": {
            "lastScheduleTime": "2026-12-03T02:30:00Z",
            "lastSuccessfulTime": "2026-12-03T02:31:10Z",
            "active": [{"kind": "Job", "name": "nightly-29001"}],
        },
    }
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    stats = app_stats("nightly", "v1", workload, [], now=now)
    assert stats.status is AppStatus.RUNNING
    assert stats.cron_job is not None
    shown = stats.cron_job.to_wire()
    assert shown == {
        "schedule": "30 2 * * *",
        "nextScheduleTime": "2026-12-04T02:30:00Z",
        "lastScheduleTime": "2026-12-03T02:30:00Z",
        "lastSuccessfulTime": "2026-12-03T02:31:10Z",
        "active": True,
        "lastCause": "",
        "skipped": 0,
        "missed": 0,
    }
    idle = app_stats("nightly", "v1", {**workload, "status": {}}, [], now=now).cron_job
    assert idle is not None
    assert (idle.active, idle.last_schedule_time) == (False, None)
    assert app_stats("web", "v1", deployment(1, replicas=1), [], now=now).cron_job is None
