"""The local Kubernetes of tools/kube as a test fixture: started once per session, removed after.

One cluster runs on a machine at a time (containerd's shims keep state in /run/containerd), so
the tests that use it (marked `kube`) run in a pytest process of their own without xdist workers:
`make test` runs them after the rest. (pytest-xdist's `loadgroup` would keep them on one worker,
but pytest-xdist 3.8 cannot set a group on pytest 9.2's node ids.) Where the binaries or the
system packages are missing, the tests skip and say what is missing and how to get it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.kit.progress import Progress
from tools.kube.cluster import PORT_BASE, Cluster, missing_parts
from tools.kube.layout import NODE_NAME, ClusterLayout, ClusterState


@dataclass(frozen=True)
class KubeCluster:
    """A running local cluster: its admin kubeconfig, node name and directory."""

    layout: ClusterLayout
    state: ClusterState
    cluster: Cluster

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

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Stop the cluster (its data kept) for a test that runs a cluster of its own (one a
        machine), then start it again."""
        problems = await asyncio.to_thread(self.cluster.down, purge=False)
        assert not problems, f"the local cluster left things on the host: {problems}"
        try:
            yield
        finally:
            await self.cluster.up(port_base=PORT_BASE)

    async def api_outage(self, seconds: float) -> None:
        """Stop the API server for `seconds`, then start it again and wait until it is ready."""
        stopped = await asyncio.to_thread(self.cluster.stop_component, "kube-apiserver")
        assert stopped, "the API server was not running"
        await asyncio.sleep(seconds)  # the outage itself, not a wait for a condition
        await self.cluster.up(port_base=PORT_BASE)


def running_cluster(directory: Path) -> Iterator[KubeCluster]:
    """Start a cluster in `directory`, yield it, then stop it and check the host is clean."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        pytest.skip(
            f"the Kubernetes tests need the one local cluster, not {workers} xdist workers: "
            "run them with `pytest -m kube -p no:xdist` (as `make test` does)"
        )
    missing = missing_parts()
    if missing:
        pytest.skip("the local Kubernetes cannot run here; missing: " + "; ".join(missing))
    cluster = Cluster(ClusterLayout(directory), Progress("kube"))
    try:
        state = asyncio.run(cluster.up(port_base=PORT_BASE))
        yield KubeCluster(cluster.layout, state, cluster)
    finally:
        problems = cluster.down(purge=True)
        assert not problems, f"the local cluster left things on the host: {problems}"
