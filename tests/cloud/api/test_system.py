"""Health, errors, request ids, OpenAPI and metrics of a real cloud server."""

from __future__ import annotations

import stat

from tests.harness.cloud import CloudServer


async def test_health_needs_no_token(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/health", anonymous=True)
    assert (answer.status, answer.body) == (200, {"success": True})


async def test_first_start_writes_an_admin_token_and_a_secret_key_readable_only_by_the_owner(
    cloud: CloudServer,
) -> None:
    for name in ("admin.token", "secret.key"):
        mode = (cloud.data_dir / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, name
    assert cloud.admin_token.startswith("bt_")


async def test_unknown_route_gets_the_error_body_and_a_request_id(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/v1/no-such-thing")
    assert answer.status == 404
    assert answer.body["code"] == "ErrRequestMethodNotFound"
    assert answer.body["requestId"] == answer.headers["X-Request-Id"]


async def test_a_method_the_route_lacks_is_405_with_baetyls_code(cloud: CloudServer) -> None:
    # Baetyl answers 404 here; the path exists, so 405 (docs/api.md, "Differences from Baetyl").
    answer = await cloud.call("PATCH", "/v1/apps/some-app", {})
    assert answer.status == 405
    assert answer.body["code"] == "ErrRequestMethodNotFound"


async def test_a_given_request_id_is_echoed(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/health", anonymous=True, headers={"X-Request-Id": "req-42"})
    assert answer.headers["X-Request-Id"] == "req-42"


async def test_a_bad_request_id_is_replaced(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/health", anonymous=True, headers={"X-Request-Id": "a b"})
    assert answer.headers["X-Request-Id"] != "a b"
    assert len(answer.headers["X-Request-Id"]) == 32


async def test_openapi_describes_every_route_with_schemas(cloud: CloudServer) -> None:
    answer = await cloud.call("GET", "/v1/openapi.json", anonymous=True)
    assert answer.status == 200
    document = answer.body
    assert document["openapi"] == "3.1.0"
    assert "/v1/tokens" in document["paths"]
    post = document["paths"]["/v1/tokens"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenRequest"
    }
    schemas = document["components"]["schemas"]
    assert "createTime" in schemas["TokenView"]["properties"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], (method, path)


async def test_metrics_count_requests_by_route(cloud: CloudServer) -> None:
    await cloud.call("GET", "/v1/tokens")
    text = (await cloud.call("GET", "/metrics", anonymous=True)).body
    assert (
        'baetyl_cloud_http_requests_total{method="GET",route="/v1/tokens",status="200"} 1.0' in text
    )


def _refs(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for item in value.values() for ref in _refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    return []


async def test_openapi_covers_every_route_and_every_reference_resolves(cloud: CloudServer) -> None:
    document = (await cloud.call("GET", "/v1/openapi.json", anonymous=True)).body
    operations = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    for method, path in [
        ("GET", "/v1/nodes"),
        ("POST", "/v1/nodes"),
        ("PATCH", "/v1/nodes/{name}/shadow"),
        ("GET", "/v1/apps/{name}/registries"),
        ("POST", "/v1/registries/{name}/refresh"),
        ("PUT", "/v1/configs/{name}"),
        ("DELETE", "/v1/certificates/{name}"),
        ("GET", "/v1/quotas"),
        ("POST", "/v1/namespace"),
        ("GET", "/v1/properties/{name}"),
    ]:
        assert (method, path) in operations, (method, path)
    components = document["components"]
    for ref in _refs(document):
        assert ref.startswith("#/components/"), ref
        group, name = ref.removeprefix("#/components/").split("/", 1)
        assert name in components[group], ref
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
