"""The local Kubernetes of tools/kube as a test fixture: started once per session, removed after.

The tests that use it run on one pytest-xdist worker (the `kube` group): one cluster runs on a
machine at a time (containerd's shims keep state in /run/containerd). Where the binaries or the
system packages are missing, the tests skip and say what is missing and how to get it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.kit.progress import Progress
from tools.kube.cluster import Cluster, missing_parts
from tools.kube.layout import NODE_NAME, ClusterLayout, ClusterState

GROUP = "kube"  # the pytest-xdist group of every test using the cluster


@dataclass(frozen=True)
class KubeCluster:
    """A running local cluster: its admin kubeconfig, node name and directory."""

    layout: ClusterLayout
    state: ClusterState

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (`system:masters`)."""
        return self.layout.kubeconfig

    @property
    def node_name(self) -> str:
        """The one node's name."""
        return NODE_NAME

    @property
    def node_ip(self) -> str:
        """The node's address (this machine's own interface address)."""
        return self.state.node_ip


def running_cluster(directory: Path) -> Iterator[KubeCluster]:
    """Start a cluster in `directory`, yield it, then stop it and check the host is clean."""
    missing = missing_parts()
    if missing:
        pytest.skip("the local Kubernetes cannot run here; missing: " + "; ".join(missing))
    cluster = Cluster(ClusterLayout(directory), Progress("kube"))
    try:
        state = asyncio.run(cluster.up(port_base=26440))
        yield KubeCluster(cluster.layout, state)
    finally:
        problems = cluster.down(purge=True)
        assert not problems, f"the local cluster left things on the host: {problems}"
