"""Fixtures of the Kubernetes backend's tests: the cluster admin's API connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.core.kube.client import KubeApi
from tests.harness.kube import KubeCluster
from tests.harness.wheel import agent_wheel
from tools.kube.agent_image import AGENT_IMAGE, build
from tools.kube.cluster import import_archive


@pytest.fixture
async def agent_image(kube_cluster: KubeCluster) -> str:
    """The agent image, built from the wheel of the working tree and imported into the node."""
    wheel = await asyncio.to_thread(agent_wheel)
    archive = await asyncio.to_thread(build, wheel)
    await import_archive(kube_cluster.layout, archive)
    return AGENT_IMAGE


@pytest.fixture
async def kube_admin(kube_cluster: KubeCluster) -> AsyncIterator[KubeApi]:
    """The local cluster's admin (`system:masters`), for looking and for playing the user who
    edits things."""
    api = await KubeApi.connect(kube_cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.close()
