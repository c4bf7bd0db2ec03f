"""Spec rules on text the node's kernel always refuses: NUL characters and over-long paths.

A spec with them passes the models but every node fails it (ValueError or ENAMETOOLONG at the
spawn or the mkdir): the shared rules refuse it, so the cloud answers 400 and the agent never tries.
"""

import copy
from typing import Any

import pytest

from agent.contracts import spec_rules
from agent.contracts.resources import Application
from tests.agent.contracts.test_spec_rules import BASE

LONG_NAME = "n" * (spec_rules.NAME_MAX + 1)


def app(service: dict[str, Any] | None = None, host_path: str = "/var/lib/x") -> Application:
    spec = copy.deepcopy(BASE)
    spec["services"][0].update(service or {})
    spec["volumes"][2]["hostPath"]["path"] = host_path
    return Application.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        (
            app(host_path="/var/lib/a\x00b"),
            "volumes[2] 'host': hostPath.path '/var/lib/a\\x00b' contains a NUL character",
        ),
        (
            app(host_path="/var/" + LONG_NAME),
            "volumes[2] 'host': hostPath.path: the name 'nnnn",
        ),
        (app(host_path="/a" * 2048), "hostPath.path is 4096 bytes long; at most 4095"),
        ({"command": ["python3", "-c", "x\x00"]}, "services 'web': command[2] contains a NUL"),
        ({"args": ["\x00"]}, "services 'web': args[0] contains a NUL"),
        ({"env": [{"name": "A", "value": "1\x002"}]}, "services 'web': env[0].value contains"),
        (
            {"readinessProbe": {"exec": {"command": ["true\x00"]}}},
            "services 'web': readinessProbe.exec.command[0] contains a NUL",
        ),
        (
            {"volumeMounts": [{"name": "tmp", "mountPath": f"/data/{LONG_NAME}"}]},
            "volumeMounts[0].mountPath: the name 'nnnn",
        ),
        (
            {"volumeMounts": [{"name": "tmp", "mountPath": "/d" * 600}]},
            "volumeMounts[0].mountPath is 1200 bytes long; at most 1024",
        ),
        (
            {"volumeMounts": [{"name": "conf", "mountPath": "c", "subPath": LONG_NAME}]},
            "volumeMounts[0].subPath: the name",
        ),
        ({"workingDir": "w/" + LONG_NAME}, "services 'web': workingDir: the name"),
        ({"workingDir": "/w\x00"}, "services 'web': workingDir '/w\\x00' contains a NUL"),
    ],
)
def test_text_every_node_refuses_is_refused_by_the_shared_rules(
    spec: Application | dict[str, Any], wanted: str
) -> None:
    application = spec if isinstance(spec, Application) else app(spec)
    with pytest.raises(spec_rules.SpecError) as caught:
        spec_rules.check(application)
    assert wanted in str(caught.value)
    assert len(str(caught.value)) < 1000  # a long path is not echoed whole


def test_paths_at_the_limits_pass() -> None:
    name = "n" * spec_rules.NAME_MAX
    spec = app(
        {
            "workingDir": f"/{name}",
            "volumeMounts": [{"name": "tmp", "mountPath": "/d" * 512}],
            "env": [{"name": "A", "value": "unicode é ok"}],
        },
        host_path="/" + name,
    )
    spec_rules.check(spec)
