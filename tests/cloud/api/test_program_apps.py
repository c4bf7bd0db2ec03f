"""Native apps whose services name `programConfig` (Baetyl's body): checked, pinned, propagated."""

from __future__ import annotations

from typing import Any

from tests.harness.cloud import CloudServer


def program_app(config: Any = "hello-program") -> dict[str, Any]:
    return {
        "name": "hello-program",
        "mode": "native",
        "selector": "",
        "services": [{"name": "hello", "programConfig": config}],
    }


async def test_the_program_configuration_must_exist(cloud: CloudServer) -> None:
    answer = await cloud.call("POST", "/v1/apps", program_app())
    assert (answer.status, answer.body["code"]) == (400, "ErrRequestParamInvalid")
    assert "programConfig names configuration 'hello-program'" in answer.body["message"]
    assert (await cloud.ok("GET", "/v1/apps"))["total"] == 0


async def test_a_program_config_is_pinned_and_a_new_version_rolls_the_app(
    cloud: CloudServer,
) -> None:
    body = {
        "name": "hello-program",
        "data": [{"key": "program.yml", "value": {"value": "entry: a"}}],
    }
    config = await cloud.ok("POST", "/v1/configs", body)
    app = await cloud.ok("POST", "/v1/apps", program_app())
    assert app["services"][0]["programConfig"] == {
        "name": "hello-program",
        "version": config["version"],
    }
    body["data"][0]["value"]["value"] = "entry: b"
    changed = await cloud.ok("PUT", "/v1/configs/hello-program", body)
    after = await cloud.ok("GET", "/v1/apps/hello-program")
    assert after["services"][0]["programConfig"]["version"] == changed["version"]
    assert after["version"] != app["version"]
    used = await cloud.call("DELETE", "/v1/configs/hello-program")
    assert (used.status, used.body["code"]) == (403, "ErrResourceHasBeenUsed")
    users = await cloud.ok("GET", "/v1/configs/hello-program/apps")
    assert "hello-program" in str(users)


async def test_a_native_service_needs_a_command_or_a_program(cloud: CloudServer) -> None:
    body = {"name": "bare", "mode": "native", "services": [{"name": "main"}]}
    answer = await cloud.call("POST", "/v1/apps", body)
    assert answer.status == 400
    assert "needs a command or a programConfig" in answer.body["message"]
