"""agent/core/functions.py, pure: what a function service becomes, and what stays untouched."""

from __future__ import annotations

import json

import pytest

from agent.contracts.resources import Application, Configuration, Volume
from agent.contracts.wire import validate
from agent.core.backend import DeployError, Deployment
from agent.core.functions import CONFIG_PREFIX, RUNTIME_MODULE, function_index, runnable

CODE = validate(Configuration, {"name": "code", "version": "3", "data": {"index.py": "x = 1\n"}})


def app(**service: object) -> Application:
    return validate(
        Application,
        {
            "name": "fn",
            "version": "1",
            "mode": "native",
            "type": "function",
            "services": [
                {
                    "name": "py",
                    "functionConfig": {"name": "code", "runtime": "python3.6"},
                    "functions": [
                        {"name": "b", "handler": "index.b", "codedir": "lib"},
                        {"name": "a", "handler": "index.a"},
                    ],
                    **service,
                }
            ],
        },
    )


GENERATED = f"{CONFIG_PREFIX}fn-py"  # per app and service: kube nodes share ConfigMaps


def test_a_function_service_runs_the_runtime_over_its_mounted_code() -> None:
    made = runnable(Deployment(app(), {"code": CODE}), "/venv/bin/python")
    (service,) = made.app.services
    assert service.command[:3] == ["/venv/bin/python", "-m", RUNTIME_MODULE]
    assert service.command[3:] == [
        "--config", "$(BAETYL_INSTANCE_DIR)/baetyl/function/runtime/functions.json"
    ]  # fmt: skip
    mounts = {m.name: (m.mount_path, m.read_only) for m in service.volume_mounts}
    assert mounts == {
        "fn-code-py": ("/baetyl/function/code", True),
        "fn-runtime-py": ("/baetyl/function/runtime", True),
    }
    volumes = {v.name: v.config.name for v in made.app.volumes if v.config is not None}
    assert volumes == {"fn-code-py": "code", "fn-runtime-py": GENERATED}
    generated = json.loads(made.configs[GENERATED].data["functions.json"])
    assert generated == {
        "functions": [
            {"name": "b", "handler": "index.b", "codedir": "../code/lib"},
            {"name": "a", "handler": "index.a", "codedir": "../code"},
        ]
    }
    assert made.configs["code"] == CODE
    assert function_index(made.app) == {"b": "py", "a": "py"}  # the app's order: b first
    # Made runnable twice, it is the same (a stored deployment may come back).
    assert runnable(made, "/venv/bin/python") == made


def test_other_apps_pass_unchanged() -> None:
    plain = validate(
        Application,
        {
            "name": "web",
            "version": "1",
            "mode": "native",
            "services": [{"name": "main", "command": ["true"]}],
        },
    )
    deployment = Deployment(plain)
    assert runnable(deployment, "/py") is deployment
    assert function_index(plain) == {}


@pytest.mark.parametrize(
    ("volumes", "configs", "expected"),
    [
        ([{"name": "fn-code-py", "emptyDir": {}}], {"code": CODE}, "volume name fn-code-py"),
        ([], {"code": CODE, f"{CONFIG_PREFIX}fn-py": CODE}, "configuration name"),
        ([], {}, "code configuration code was not delivered"),
    ],
)
def test_names_the_expansion_needs_and_missing_code_are_deploy_errors(
    volumes: list[dict[str, object]], configs: dict[str, Configuration], expected: str
) -> None:
    spec = app().model_copy(update={"volumes": [validate(Volume, v) for v in volumes]})
    with pytest.raises(DeployError, match=expected):
        runnable(Deployment(spec, configs), "/py")
