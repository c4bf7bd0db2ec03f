"""`/v1/quotas` and quota enforcement on node creation: defaults, per-namespace overrides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.settings import QuotaDefaults
from cloud.store import quotas as quota_store
from cloud.store.models import Shadow
from tests.cloud.api.node_helpers import native_app, node
from tests.harness.cloud import CloudServer, start_cloud


@pytest.fixture
async def limited(tmp_path: Path, cloud_db_url: str | None) -> AsyncIterator[CloudServer]:
    """A cloud whose namespaces may have 2 nodes and 3 apps by default."""
    runner, server = await start_cloud(
        tmp_path / "cloud", cloud_db_url, quotas=QuotaDefaults(max_node_count=2, max_app_count=3)
    )
    try:
        yield server
    finally:
        await server.session.close()
        await runner.cleanup()


async def test_quotas_default_to_unlimited_and_count_what_is_used(cloud: CloudServer) -> None:
    assert await cloud.ok("GET", "/v1/quotas") == {
        "maxNodeCount": 0,
        "maxAppCount": 0,
        "used": {"maxNodeCount": 0, "maxAppCount": 0},
    }
    await node(cloud, "edge-1")
    await cloud.ok("POST", "/v1/apps", native_app("web", "env=prod"))
    used = (await cloud.ok("GET", "/v1/quotas"))["used"]
    assert used == {"maxNodeCount": 1, "maxAppCount": 1}


async def test_a_node_beyond_the_quota_is_refused_and_nothing_is_created(
    limited: CloudServer,
) -> None:
    await node(limited, "edge-1")
    await node(limited, "edge-2")
    assert await limited.ok("GET", "/v1/quotas") == {
        "maxNodeCount": 2,
        "maxAppCount": 3,
        "used": {"maxNodeCount": 2, "maxAppCount": 0},
    }
    answer = await limited.call("POST", "/v1/nodes", {"name": "edge-3"})
    assert answer.status == 400
    assert answer.body["code"] == "ErrLicenseQuota"
    assert answer.body["message"] == "Check (maxNodeCount) quota failed, the limited number is (2)"
    assert (await limited.ok("GET", "/v1/nodes"))["total"] == 2
    assert not await Shadow.filter(namespace="default", name="edge-3").exists()
    # Deleting a node frees its slot.
    await limited.ok("DELETE", "/v1/nodes/edge-1")
    await node(limited, "edge-3")


async def test_a_namespace_override_replaces_the_default_for_that_namespace_only(
    limited: CloudServer,
) -> None:
    other = await limited.token(namespace="tenant-b")
    await quota_store.set_override("tenant-b", "maxNodeCount", 1)
    await limited.ok("POST", "/v1/nodes", {"name": "edge-1"}, token=other)
    answer = await limited.call("POST", "/v1/nodes", {"name": "edge-2"}, token=other)
    assert (answer.status, answer.body["code"]) == (400, "ErrLicenseQuota")
    assert (await limited.ok("GET", "/v1/quotas", token=other))["maxNodeCount"] == 1
    # The default namespace still has the default limit of 2.
    await node(limited, "edge-1")
    await node(limited, "edge-2")
    assert (await limited.ok("GET", "/v1/quotas"))["maxNodeCount"] == 2
    # An override of 0 lifts the limit.
    await quota_store.set_override("tenant-b", "maxNodeCount", 0)
    for name in ("edge-2", "edge-3"):
        await limited.ok("POST", "/v1/nodes", {"name": name}, token=other)
    assert (await limited.ok("GET", "/v1/quotas", token=other))["used"]["maxNodeCount"] == 3
    await quota_store.clear_override("tenant-b", "maxNodeCount")
    assert (await limited.ok("GET", "/v1/quotas", token=other))["maxNodeCount"] == 2


async def test_concurrent_creates_cannot_overshoot_the_quota(limited: CloudServer) -> None:
    await node(limited, "edge-0")
    answers = await asyncio.gather(
        *(limited.call("POST", "/v1/nodes", {"name": f"edge-{i}"}) for i in range(1, 6))
    )
    assert sorted(a.status for a in answers) == [200, 400, 400, 400, 400]
    assert {a.body["code"] for a in answers if a.status == 400} == {"ErrLicenseQuota"}
    assert (await limited.ok("GET", "/v1/nodes"))["total"] == 2
    assert await Shadow.filter(namespace="default").count() == 2


async def test_app_creation_beyond_max_app_count_is_refused_and_creates_nothing(
    limited: CloudServer,
) -> None:
    for index in range(3):
        await limited.ok("POST", "/v1/apps", native_app(f"app-{index}", "role=x"))
    answer = await limited.call("POST", "/v1/apps", native_app("app-3", "role=x"))
    assert answer.status == 400
    assert answer.body["code"] == "ErrLicenseQuota"
    assert "maxAppCount" in answer.body["message"]
    assert (await limited.ok("GET", "/v1/apps"))["total"] == 3
    system_app = native_app("platform-extra", "role=x") | {"system": True}
    refused = await limited.call("POST", "/v1/apps", system_app)  # no way around the quota
    assert refused.status == 400
    assert "system" in refused.body["message"]
    assert (await limited.ok("GET", "/v1/apps"))["total"] == 3


async def test_a_namespace_quota_row_overrides_the_default_for_apps(limited: CloudServer) -> None:
    await quota_store.set_override("default", "maxAppCount", 1)
    await limited.ok("POST", "/v1/apps", native_app("app-0", "role=x"))
    answer = await limited.call("POST", "/v1/apps", native_app("app-1", "role=x"))
    assert answer.body["code"] == "ErrLicenseQuota"
