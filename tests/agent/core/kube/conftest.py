"""Fixtures of the Kubernetes backend's tests: the cluster admin's API connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.core.kube.client import KubeApi
from tests.harness.kube import KubeCluster


@pytest.fixture
async def kube_admin(kube_cluster: KubeCluster) -> AsyncIterator[KubeApi]:
    """The local cluster's admin (`system:masters`), for looking and for playing the user who
    edits things."""
    api = await KubeApi.connect(kube_cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.close()
