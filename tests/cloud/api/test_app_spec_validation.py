"""`/v1/apps` refuses, with a 400 naming service and field, every spec the agent would refuse.

The rules are agent.contracts.spec_rules (shared with the agent) and the integer bounds of the
resource models; a refused create or update leaves the stored apps as they were.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.harness.cloud import CloudServer

GOOD: dict[str, Any] = {
    "name": "hello",
    "mode": "native",
    "selector": "role=gateway",
    "services": [{"name": "web", "command": ["python3", "-m", "http.server", "8080"]}],
    "volumes": [
        {"name": "conf", "config": {"name": "settings"}},
        {"name": "creds", "secret": {"name": "db-pass"}},
        {"name": "host", "hostPath": {"path": "/var/lib/hello"}},
        {"name": "tmp", "emptyDir": {}},
    ],
}


def spec(service: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    body["services"][0].update(service or {})
    body.update(top)
    return body


def mounts(*pairs: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"volumeMounts": [{"name": n, "mountPath": p, **extra} for n, p in pairs]}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("mount-dot", spec(mounts(("conf", "."))), "services 'web': volumeMounts[0].mountPath '.'"),
    ("mount-root", spec(mounts(("conf", "/"))), "services 'web': volumeMounts[0].mountPath '/'"),
    (
        "subpath-dotdot",
        spec({"volumeMounts": [{"name": "host", "mountPath": "d", "subPath": "../../etc"}]}),
        "services 'web': volumeMounts[0].subPath '../../etc' must not contain '..'",
    ),
    (
        "workdir-escaping",
        spec({"workingDir": "/../../etc"}),
        "services 'web': workingDir '/../../etc' must not contain '..'",
    ),
    (
        "config-under-hostpath",
        spec(mounts(("host", "data"), ("conf", "data/conf"))),
        "volume 'conf' at 'data/conf' lies inside volume 'host' at 'data'",
    ),
    (
        "same-mountpath-twice",
        spec(mounts(("conf", "etc"), ("tmp", "/etc"))),
        "volumeMounts[1].mountPath '/etc': volume 'conf' is mounted there already",
    ),
    (
        "secret-subpath-over-config",
        spec(
            {
                "volumeMounts": [
                    {"name": "conf", "mountPath": "etc"},
                    {"name": "creds", "mountPath": "etc/password", "subPath": "password"},
                ]
            }
        ),
        "volume 'creds' at 'etc/password' lies inside volume 'conf' at 'etc'",
    ),
    ("replica-beyond-64-bits", spec(replica=2**64), "replica"),
    ("service-replica-beyond-64-bits", spec({"replica": 2**70}), "replica"),
    (
        "backoff-limit-beyond-64-bits",
        spec(workload="job", jobConfig={"backoffLimit": 2**64}),
        "backoffLimit",
    ),
    (
        "probe-period-beyond-64-bits",
        spec({"livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2**64}}),
        "periodSeconds",
    ),
    ("replica-float-beyond-64-bits", spec(replica=1e30), "replica"),
]


@pytest.fixture
async def with_resources(cloud: CloudServer) -> CloudServer:
    config = {"name": "settings", "data": [{"key": "conf.yml", "value": {"value": "a: 1"}}]}
    await cloud.ok("POST", "/v1/configs", config)
    await cloud.ok("POST", "/v1/secrets", {"name": "db-pass", "data": {"password": "pw"}})
    return cloud


@pytest.mark.parametrize(("body"), [b[1] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_spec_the_agent_would_refuse_is_a_400_and_changes_nothing(
    with_resources: CloudServer, method: str, body: dict[str, Any]
) -> None:
    cloud = with_resources
    fragment = next(b[2] for b in BAD if b[1] is body)
    path = "/v1/apps"
    if method == "PUT":
        await cloud.ok("POST", "/v1/apps", spec())
        path = "/v1/apps/hello"
    before = await cloud.ok("GET", "/v1/apps")
    answer = await cloud.call(method, path, body)
    assert answer.status == 400, answer.body
    assert answer.body["code"] == "ErrRequestParamInvalid"
    assert fragment in answer.body["message"]
    assert answer.body["requestId"]
    assert await cloud.ok("GET", "/v1/apps") == before


async def test_nested_mounts_in_an_empty_dir_and_a_config_working_dir_are_accepted(
    with_resources: CloudServer,
) -> None:
    body = spec(
        {
            "workingDir": "/etc/app",
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/etc"},
                {"name": "conf", "mountPath": "/etc/app"},
                {"name": "creds", "mountPath": "/run/password", "subPath": "password"},
            ],
        }
    )
    created = await with_resources.ok("POST", "/v1/apps", body)
    assert created["services"][0]["workingDir"] == "/etc/app"


NODE_REFUSES: list[tuple[str, dict[str, Any], str]] = [
    (
        "hostpath-nul",
        spec(volumes=[{"name": "host", "hostPath": {"path": "/var/lib/a\x00b"}}]),
        "volumes[0].hostPath.path: text must not contain NUL",  # the body reader's rule
    ),
    (
        "command-nul",
        spec({"command": ["python3", "-c", "print(1)\x00"]}),
        "services[0].command[2]: text must not contain NUL",
    ),
    (
        "env-nul",
        spec({"env": [{"name": "MODE", "value": "a\x00b"}]}),
        "services[0].env[0].value: text must not contain NUL",
    ),
    (
        "mountpath-name-too-long",
        spec(mounts(("tmp", "/data/" + "n" * 256))),
        "services 'web': volumeMounts[0].mountPath: the name 'nnnn",
    ),
    (
        "workdir-too-long",
        spec({"workingDir": "/w" * 600}),
        "services 'web': workingDir is 1200 bytes long; at most 1024",
    ),
]


@pytest.mark.parametrize(("body"), [b[1] for b in NODE_REFUSES], ids=[b[0] for b in NODE_REFUSES])
async def test_text_no_node_can_use_is_a_400_and_changes_nothing(
    with_resources: CloudServer, body: dict[str, Any]
) -> None:
    """NUL characters and over-long paths: every node would fail the spawn or the mkdir."""
    cloud = with_resources
    fragment = next(b[2] for b in NODE_REFUSES if b[1] is body)
    before = await cloud.ok("GET", "/v1/apps")
    answer = await cloud.call("POST", "/v1/apps", body)
    assert answer.status == 400, answer.body
    assert answer.body["code"] == "ErrRequestParamInvalid"
    assert fragment in answer.body["message"]
    assert await cloud.ok("GET", "/v1/apps") == before
