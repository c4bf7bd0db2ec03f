"""The spec rules the cloud and the agent share, and the bounds of every integer of a spec."""

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from agent.contracts import resources, spec_rules
from agent.contracts.resources import Application

BASE: dict[str, Any] = {
    "name": "hello",
    "version": "3",
    "mode": "native",
    "replica": 1,
    "jobConfig": {"completions": 1, "parallelism": 1, "backoffLimit": 6},
    "services": [
        {
            "name": "web",
            "command": ["python3"],
            "replica": 1,
            "ports": [{"containerPort": 8080, "hostPort": 8080}],
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
            "readinessProbe": {"exec": {"command": ["true"]}},
            "volumeMounts": [],
        }
    ],
    "volumes": [
        {"name": "conf", "config": {"name": "conf", "version": "1"}},
        {"name": "creds", "secret": {"name": "creds", "version": "1"}},
        {"name": "host", "hostPath": {"path": "/var/lib/x"}},
        {"name": "tmp", "emptyDir": {}},
    ],
}


def app_with(mounts: list[dict[str, Any]], **service: Any) -> Application:
    spec = copy.deepcopy(BASE)
    spec["services"][0]["volumeMounts"] = mounts
    spec["services"][0].update(service)
    return Application.model_validate(spec)


@pytest.mark.parametrize(
    ("mounts", "service", "wanted"),
    [
        ([{"name": "conf", "mountPath": "."}], {}, "volumeMounts[0].mountPath '.'"),
        ([{"name": "conf", "mountPath": "/"}], {}, "volumeMounts[0].mountPath '/'"),
        (
            [{"name": "conf", "mountPath": "etc", "subPath": "../x"}],
            {},
            "volumeMounts[0].subPath '../x' must not contain '..'",
        ),
        (
            [{"name": "conf", "mountPath": "etc/a", "subPath": "dir/key"}],
            {},
            "must be one key",
        ),
        (
            [{"name": "conf", "mountPath": "etc"}, {"name": "tmp", "mountPath": "/etc/"}],
            {},
            "volumeMounts[1].mountPath '/etc/': volume 'conf' is mounted there already",
        ),
        (
            [
                {"name": "conf", "mountPath": "etc"},
                {"name": "creds", "mountPath": "etc/x", "subPath": "x"},
            ],
            {},
            "volume 'creds' at 'etc/x' lies inside volume 'conf' at 'etc'",
        ),
        (
            [{"name": "host", "mountPath": "data"}, {"name": "conf", "mountPath": "data/conf"}],
            {},
            "volume 'conf' at 'data/conf' lies inside volume 'host' at 'data'",
        ),
        ([], {"workingDir": "../up"}, "workingDir '../up' must not contain '..'"),
        ([], {"workingDir": "/a/../../b"}, "must not contain '..'"),
        (
            [{"name": "host", "mountPath": "data"}],
            {"workingDir": "/data/sub"},
            "workingDir '/data/sub' lies inside volume 'host'",
        ),
        ([], {"command": [""]}, "command[0] must not be empty"),
    ],
)
def test_a_spec_the_agent_cannot_run_is_refused_naming_service_and_field(
    mounts: list[dict[str, Any]], service: dict[str, Any], wanted: str
) -> None:
    app = app_with(mounts, **service)
    with pytest.raises(spec_rules.SpecError) as caught:
        spec_rules.check(app)
    assert wanted in str(caught.value)
    assert "services 'web'" in str(caught.value)


@pytest.mark.parametrize(
    ("mounts", "service"),
    [
        ([{"name": "tmp", "mountPath": "/data"}, {"name": "conf", "mountPath": "/data/conf"}], {}),
        ([{"name": "conf", "mountPath": "/etc/app"}], {"workingDir": "/etc/app"}),
        ([{"name": "conf", "mountPath": "etc/app.yml", "subPath": "app.yml"}], {}),
        ([], {"workingDir": "/"}),
        ([], {"workingDir": "."}),
        ([], {"workingDir": "/srv/app"}),
    ],
)
def test_a_spec_the_agent_can_run_passes(
    mounts: list[dict[str, Any]], service: dict[str, Any]
) -> None:
    assert spec_rules.problems(app_with(mounts, **service)) == []


def test_every_problem_is_listed_at_once() -> None:
    app = app_with([{"name": "conf", "mountPath": "/"}], workingDir="..")
    assert len(spec_rules.problems(app)) == 2


def test_version_dot_or_dotdot_is_refused() -> None:
    spec = copy.deepcopy(BASE)
    spec["version"] = ".."
    assert "version '..'" in str(spec_rules.problems(Application.model_validate(spec)))


def _integers(schema: Any, defs: dict[str, Any], path: str = "") -> list[tuple[str, Any]]:
    """(path, schema) of every integer in a JSON schema, following $refs."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _integers(defs[schema["$ref"].rsplit("/", 1)[1]], defs, path)
        found = [(path, schema)] if schema.get("type") == "integer" else []
        for key, value in schema.items():
            if key != "$defs":
                found += _integers(value, defs, f"{path}/{key}")
        return found
    if isinstance(schema, list):
        return [hit for i, item in enumerate(schema) for hit in _integers(item, defs, f"{path}")]
    return []


@pytest.mark.parametrize(
    "model",
    [
        value
        for value in vars(resources).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == resources.__name__
    ],
)
def test_every_integer_of_every_resource_model_is_bounded(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for path, integer in _integers(schema, schema.get("$defs", {})):
        assert "minimum" in integer, f"{model.__name__}{path} has no lower bound"
        assert "maximum" in integer, f"{model.__name__}{path} has no upper bound"
        assert -(2**53) <= integer["minimum"] <= integer["maximum"] <= 2**53


INTEGER_PATHS = [
    ("replica",),
    ("jobConfig", "completions"),
    ("jobConfig", "parallelism"),
    ("jobConfig", "backoffLimit"),
    ("services", 0, "replica"),
    ("services", 0, "ports", 0, "containerPort"),
    ("services", 0, "ports", 0, "hostPort"),
    ("services", 0, "livenessProbe", "periodSeconds"),
    ("services", 0, "livenessProbe", "initialDelaySeconds"),
    ("services", 0, "livenessProbe", "timeoutSeconds"),
    ("services", 0, "livenessProbe", "failureThreshold"),
    ("services", 0, "livenessProbe", "successThreshold"),
    ("services", 0, "livenessProbe", "tcpSocket", "port"),
]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(range(len(INTEGER_PATHS))),
        st.one_of(
            st.integers(),
            st.integers(min_value=2**63 - 5, max_value=2**70),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    )
)
def test_any_accepted_spec_serialises_with_orjson(values: dict[int, Any]) -> None:
    spec = copy.deepcopy(BASE)
    for index, value in values.items():
        *parents, last = INTEGER_PATHS[index]
        node: Any = spec
        for key in parents:
            node = node[key]
        node[last] = value
    try:
        app = Application.model_validate(spec)
    except ValidationError:
        return
    orjson.dumps(app.to_wire())
