"""Reported sections a simulated node sends, shaped like a real agent's (DESIGN §5).

The first report after connecting carries everything (apps, their stats, node info, node stats,
core); later ones carry what changes every cycle — app and node usage — plus `apps` when the node
took on a new desired app. Key spellings follow agent.contracts.report.
"""

from __future__ import annotations

import random
from typing import Any

from agent.contracts.report import bytes_text, cores_text, fraction_text

LOCAL_APPS = {
    "edge-gateway": "5f0c2a9e1b7d4c33",
    "modbus-collector": "a1d9e47c02b8f615",
    "rule-engine": "3c7e0b9d58a2f1e4",
}
CREATED = "2026-11-27T08:00:00Z"
HOST_CAPACITY = {"cpu": "4", "memory": str(8 * 2**30), "disk": str(64 * 2**30)}

Section = dict[str, Any]


def full_report(
    nid: str, apps: dict[str, str], rng: random.Random, *, removed: set[str]
) -> Section:
    """The whole reported section, as an agent sends it after (re)connecting.

    `removed` apps (reported before, not running now) are deleted with nulls.
    """
    host = _hostname(nid)
    return {
        "apps": _with_removals(dict(apps), removed),
        "sysapps": {"baetyl-core": "0.1.0", "baetyl-function": "0.1.0"},
        "appstats": _with_removals(_app_stats(apps, rng), removed),
        "node": {
            host: {
                "hostname": host,
                "address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "arch": "arm64",
                "os": "linux",
                "kernelVer": "6.1.0-18-arm64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "machineID": f"{rng.getrandbits(128):032x}",
                "bootID": f"{rng.getrandbits(128):032x}",
                "role": "master",
                "labels": {"fleet": "bench"},
            }
        },
        "nodestats": _node_stats(host, rng),
        "core": {"version": "0.1.0", "python": "3.11.7", "backend": "native"},
    }


def cycle_report(
    nid: str, apps: dict[str, str], rng: random.Random, *, apps_changed: bool, removed: set[str]
) -> Section:
    """A periodic report: app and node usage, and the running apps when they changed."""
    patch: Section = {
        "appstats": _with_removals(_app_stats(apps, rng), removed),
        "nodestats": _node_stats(_hostname(nid), rng),
    }
    if apps_changed or removed:
        patch["apps"] = _with_removals(dict(apps), removed)
    return patch


def _with_removals(section: Section, removed: set[str]) -> Section:
    """A null deletes a key when the cloud merges the patch (DESIGN §5)."""
    return section | dict.fromkeys(removed)


def _hostname(nid: str) -> str:
    return nid.partition(".")[2]


def _app_stats(apps: dict[str, str], rng: random.Random) -> Section:
    return {
        name: {
            "name": name,
            "version": version,
            "status": "Running",
            "cause": "",
            "instances": {
                f"{name}-0": {
                    "name": f"{name}-0",
                    "serviceName": "main",
                    "status": "Running",
                    "pid": 1000 + index,
                    "restarts": 0,
                    "usage": {
                        "cpu": f"{rng.randrange(5, 400)}m",
                        "memory": f"{rng.randrange(20, 300)}Mi",
                    },
                    "createTime": CREATED,
                }
            },
        }
        for index, (name, version) in enumerate(sorted(apps.items()))
    }


def _node_stats(host: str, rng: random.Random) -> Section:
    """A host's load in the agent's formats (Baetyl's: decision 150)."""
    cpu, memory, disk = rng.uniform(0.02, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.6)
    return {
        host: {
            "ready": True,
            "usage": {
                "cpu": cores_text(cpu * 4),
                "memory": bytes_text(memory * 8 * 2**30),
                "disk": bytes_text(disk * 64 * 2**30),
            },
            "capacity": HOST_CAPACITY,
            "percent": {
                "cpu": fraction_text(cpu, 1),
                "memory": fraction_text(memory, 1),
                "disk": fraction_text(disk, 1),
            },
            "netio": {
                "netBytesSent": str(rng.randrange(100_000)),
                "netBytesRecv": str(rng.randrange(100_000)),
                "netPacketsSent": str(rng.randrange(1000)),
                "netPacketsRecv": str(rng.randrange(1000)),
            },
        }
    }
