"""`/v1/apps` on a real server: create, read, list, update, delete, and the bad-input table."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.harness.cloud import CloudServer

NATIVE: dict[str, Any] = {
    "name": "hello",
    "mode": "native",
    "labels": {"team": "edge"},
    "selector": "role=gateway",
    "services": [{"name": "web", "command": ["python3", "-m", "http.server", "8080"]}],
}


def app(**changes: Any) -> dict[str, Any]:
    """A copy of the native example app with top-level fields changed."""
    spec = copy.deepcopy(NATIVE)
    spec.update(changes)
    return spec


async def test_create_returns_the_app_with_namespace_version_and_times(cloud: CloudServer) -> None:
    created = await cloud.ok("POST", "/v1/apps", app())
    assert created["name"] == "hello"
    assert created["namespace"] == "default"
    assert len(created["version"]) == 16
    assert created["createTime"]
    assert created["updateTime"]
    assert created["services"][0]["command"][0] == "python3"
    assert await cloud.ok("GET", "/v1/apps/hello") == created


async def test_version_changes_only_when_content_changes(cloud: CloudServer) -> None:
    first = await cloud.ok("POST", "/v1/apps", app())
    same = await cloud.ok("PUT", "/v1/apps/hello", app())
    assert same["version"] == first["version"]
    changed = await cloud.ok("PUT", "/v1/apps/hello", app(description="now with a description"))
    assert changed["version"] != first["version"]
    back = await cloud.ok("PUT", "/v1/apps/hello", app())
    assert back["version"] == first["version"]


async def test_list_is_newest_first_with_paging_and_filters(cloud: CloudServer) -> None:
    for index in range(5):
        labels = {"team": "edge" if index % 2 == 0 else "core"}
        await cloud.ok("POST", "/v1/apps", app(name=f"app-{index}", labels=labels))
    page = await cloud.ok("GET", "/v1/apps?pageNo=1&pageSize=2")
    assert (page["total"], page["pageNo"], page["pageSize"]) == (5, 1, 2)
    assert [item["name"] for item in page["items"]] == ["app-4", "app-3"]
    last = await cloud.ok("GET", "/v1/apps?pageNo=3&pageSize=2")
    assert [item["name"] for item in last["items"]] == ["app-0"]
    edge = await cloud.ok("GET", "/v1/apps?selector=team%3Dedge")
    assert [item["name"] for item in edge["items"]] == ["app-4", "app-2", "app-0"]
    edge_page = await cloud.ok("GET", "/v1/apps?selector=team%3Dedge&pageSize=1&pageNo=2")
    assert (edge_page["total"], [i["name"] for i in edge_page["items"]]) == (3, ["app-2"])
    named = await cloud.ok("GET", "/v1/apps?name=p-3")
    assert [item["name"] for item in named["items"]] == ["app-3"]


async def test_a_cronjob_app_takes_kubernetes_schedule_syntax(cloud: CloudServer) -> None:
    for name, schedule in (("nightly", "@daily"), ("office", "*/15 8-18 * jan-jun mon-fri")):
        created = await cloud.ok(
            "POST", "/v1/apps", app(name=name, workload="cronjob", cronTime=schedule)
        )
        assert (created["workload"], created["cronTime"]) == ("cronjob", schedule)


async def test_delete_removes_the_app(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/apps", app())
    await cloud.ok("DELETE", "/v1/apps/hello")
    answer = await cloud.call("GET", "/v1/apps/hello")
    assert answer.status == 404
    assert answer.body["code"] == "ErrResourceNotFound"
    assert (
        answer.body["message"]
        == "The (application) resource (hello) is not found in namespace(default)."
    )


async def test_apps_of_another_namespace_are_invisible(cloud: CloudServer) -> None:
    await cloud.ok("POST", "/v1/apps", app())
    other = await cloud.token(namespace="tenant-b")
    assert (await cloud.ok("GET", "/v1/apps", token=other))["total"] == 0
    for method, body in (("GET", None), ("PUT", app()), ("DELETE", None)):
        answer = await cloud.call(method, "/v1/apps/hello", body, token=other)
        assert answer.status == 404, method
    await cloud.ok("POST", "/v1/apps", app(), token=other)  # same name, other tenant: fine
    assert (await cloud.ok("GET", "/v1/apps/hello"))["namespace"] == "default"


async def test_a_read_token_cannot_change_apps(cloud: CloudServer) -> None:
    reader = await cloud.token(role="read")
    assert (await cloud.call("POST", "/v1/apps", app(), token=reader)).status == 403
    assert (await cloud.call("GET", "/v1/apps", token=reader)).status == 200


def _service(**changes: Any) -> dict[str, Any]:
    service = copy.deepcopy(NATIVE["services"][0])
    service.update(changes)
    return service


BAD: list[tuple[str, str, dict[str, Any] | list[Any], int, str, str]] = [
    ("POST", "/v1/apps", app(name="Bad_Name"), 400, "ErrRequestParamInvalid", "name"),
    ("POST", "/v1/apps", app(name="a" * 56), 400, "ErrRequestParamInvalid", "longer than 55"),
    ("POST", "/v1/apps", app(name="my-baetyl-app"), 400, "ErrRequestParamInvalid", "baetyl"),
    ("POST", "/v1/apps", app(labels={"bad key": "v"}), 400, "ErrRequestParamInvalid", "label key"),
    ("POST", "/v1/apps", app(selector="role in (a"), 400, "ErrRequestParamInvalid", "selector"),
    ("POST", "/v1/apps", app(workload="cronjob"), 400, "ErrRequestParamInvalid", "workload"),
    (
        "POST",
        "/v1/apps",
        app(name="timed", workload="cronjob", cronTime="61 * * * *"),
        400,
        "ErrRequestParamInvalid",
        "cronTime: minute field '61': 61 is outside 0-59",
    ),
    (
        "PUT",
        "/v1/apps/hello",
        app(workload="cronjob", cronTime="0 8 * * 1-7"),
        400,
        "ErrRequestParamInvalid",
        "7 is outside 0-6; Sunday is 0",
    ),
    (
        "POST",
        "/v1/apps",
        app(name="timed", workload="cronjob", cronTime="0 0 31 2 *"),
        400,
        "ErrRequestParamInvalid",
        "never comes",
    ),
    ("POST", "/v1/apps", app(replica=-1), 400, "ErrRequestParamInvalid", "replica"),
    ("POST", "/v1/apps", app(services=[]), 400, "ErrRequestParamInvalid", "services"),
    (
        "POST",
        "/v1/apps",
        app(services=[_service(command=[])]),
        400,
        "ErrRequestParamInvalid",
        "needs a command",
    ),
    (
        "POST",
        "/v1/apps",
        app(mode="kube", services=[_service(image="")]),
        400,
        "ErrRequestParamInvalid",
        "needs an image",
    ),
    (
        "POST",
        "/v1/apps",
        app(services=[_service(), _service()]),
        400,
        "ErrRequestParamInvalid",
        "unique",
    ),
    (
        "POST",
        "/v1/apps",
        app(volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v1", "emptyDir": {}}]),
        400,
        "ErrRequestParamInvalid",
        "volume names must be unique",
    ),
    (
        "POST",
        "/v1/apps",
        app(services=[_service(volumeMounts=[{"name": "nope", "mountPath": "x"}])]),
        400,
        "ErrRequestParamInvalid",
        "does not declare",
    ),
    (
        "POST",
        "/v1/apps",
        app(replica=2, services=[_service(ports=[{"containerPort": 80, "hostPort": 8080}])]),
        400,
        "ErrRequestParamInvalid",
        "replica > 1",
    ),
    (
        "POST",
        "/v1/apps",
        app(name="refs", volumes=[{"name": "cfg", "config": {"name": "missing"}}]),
        400,
        "ErrRequestParamInvalid",
        "configuration 'missing', which does not exist",
    ),
    (
        "POST",
        "/v1/apps",
        app(name="refs", volumes=[{"name": "sec", "secret": {"name": "missing"}}]),
        400,
        "ErrRequestParamInvalid",
        "secret 'missing', which does not exist",
    ),
    (
        "POST",
        "/v1/apps",
        app(name="refs", volumes=[{"name": "crt", "certificate": {"name": "missing"}}]),
        400,
        "ErrRequestParamInvalid",
        "certificate 'missing', which does not exist",
    ),
    (
        "POST",
        "/v1/apps",
        app(name="refs", registries=[{"name": "missing"}]),
        400,
        "ErrRequestParamInvalid",
        "registry 'missing'",
    ),
    (
        "POST",
        "/v1/apps",
        app(selectr="a=b"),
        400,
        "ErrRequestParamInvalid",
        "selectr: unknown field; did you mean 'selector'?",
    ),
    ("POST", "/v1/apps", app(replica="1"), 400, "ErrRequestParamInvalid", "replica"),
    ("POST", "/v1/apps", [app()], 400, "ErrRequestParamInvalid", "object"),
    ("PUT", "/v1/apps/hello", app(name="other"), 400, "ErrRequestParamInvalid", "the path"),
    ("PUT", "/v1/apps/nope", app(name="nope"), 404, "ErrResourceNotFound", "nope"),
    ("DELETE", "/v1/apps/nope", {}, 404, "ErrResourceNotFound", "nope"),
    ("POST", "/v1/apps", app(), 409, "ErrResourceConflict", "already exists"),
    ("GET", "/v1/apps?pageSize=-1", {}, 400, "ErrRequestParamInvalid", "pageSize"),
    ("GET", "/v1/apps?selector=a%20in%20(", {}, 400, "ErrRequestParamInvalid", "selector"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "fragment"),
    BAD,
    ids=[f"{b[0]}-{b[5]}" for b in BAD],
)
async def test_bad_requests_are_refused_and_change_nothing(
    cloud: CloudServer, method: str, path: str, body: Any, status: int, code: str, fragment: str
) -> None:
    await cloud.ok("POST", "/v1/apps", app())
    before = await cloud.ok("GET", "/v1/apps")
    answer = await cloud.call(method, path, body if method != "GET" and body != {} else None)
    assert answer.status == status, answer.body
    assert answer.body["code"] == code
    assert fragment in answer.body["message"]
    assert await cloud.ok("GET", "/v1/apps") == before
    assert cloud.desired_changes == []


FUNCTION: dict[str, Any] = {
    "name": "hello-fn",
    "mode": "native",
    "type": "function",
    "selector": "role=gateway",
    "services": [
        {
            "name": "py",
            "functionConfig": {"name": "hello-code", "runtime": "python36"},
            "functions": [{"name": "greet", "handler": "index.greet"}],
        }
    ],
}


async def test_a_function_app_pins_its_code_configuration_and_follows_its_versions(
    cloud: CloudServer,
) -> None:
    def code(text: str) -> dict[str, Any]:
        item = {"key": "index.py", "value": {"type": "kv", "value": text}}
        return {"name": "hello-code", "data": [item]}

    missing = await cloud.call("POST", "/v1/apps", FUNCTION)
    assert missing.status == 400
    assert "functionConfig names configuration 'hello-code', which does not exist" in str(
        missing.body
    )
    assert (await cloud.call("GET", "/v1/apps/hello-fn")).status == 404
    config = await cloud.ok("POST", "/v1/configs", code("def greet(e, c):\n    return 1\n"))
    created = await cloud.ok("POST", "/v1/apps", FUNCTION)
    pinned = created["services"][0]["functionConfig"]
    assert pinned == {"name": "hello-code", "runtime": "python36", "version": config["version"]}
    assert "command" not in created["services"][0] or created["services"][0]["command"] == []
    # New code: a new config version, which the app follows with a new version of its own.
    updated = await cloud.ok(
        "PUT", "/v1/configs/hello-code", code("def greet(e, c):\n    return 2\n")
    )
    after = await cloud.ok("GET", "/v1/apps/hello-fn")
    assert after["services"][0]["functionConfig"]["version"] == updated["version"]
    assert after["version"] != created["version"]
    # The code cannot be deleted while the app uses it.
    assert (await cloud.call("DELETE", "/v1/configs/hello-code")).status == 403


@pytest.mark.parametrize(
    ("service", "fragment"),
    [
        ({"functionConfig": {"name": "hello-code", "runtime": "nodejs10"}}, "is not available"),
        ({"functionConfig": {"runtime": "python3"}}, "must name the configuration"),
        ({"functions": []}, "lists no functions"),
    ],
)
async def test_function_apps_that_cannot_run_are_refused(
    cloud: CloudServer, service: dict[str, Any], fragment: str
) -> None:
    spec = copy.deepcopy(FUNCTION)
    spec["services"][0].update(service)
    answer = await cloud.call("POST", "/v1/apps", spec)
    assert answer.status == 400
    assert fragment in str(answer.body)


async def test_a_nodes_functions_are_listed_as_baetyl_lists_them(cloud: CloudServer) -> None:
    item = {"key": "index.py", "value": {"type": "kv", "value": "def greet(e, c):\n    pass\n"}}
    await cloud.ok("POST", "/v1/configs", {"name": "hello-code", "data": [item]})
    await cloud.ok("POST", "/v1/nodes", {"name": "gw-1", "labels": {"role": "gateway"}})
    await cloud.ok("POST", "/v1/nodes", {"name": "other", "labels": {"role": "sensor"}})
    assert await cloud.ok("GET", "/v1/nodes/gw-1/functions") == {"functions": []}
    spec = copy.deepcopy(FUNCTION)
    spec["services"][0]["functions"].append({"name": "wave", "handler": "index.greet"})
    await cloud.ok("POST", "/v1/apps", spec)
    await cloud.ok("POST", "/v1/apps", app())  # a container app: not listed
    listed = await cloud.ok("GET", "/v1/nodes/gw-1/functions")
    assert listed == {"functions": ["hello-fn/greet", "hello-fn/wave"]}
    assert await cloud.ok("GET", "/v1/nodes/other/functions") == {"functions": []}
    assert (await cloud.call("GET", "/v1/nodes/nobody/functions")).status == 404
