"""The environment of app processes: what is inherited, precedence, $(VAR) references."""

from __future__ import annotations

import pytest

from agent.contracts.resources import EnvVar
from agent.core.native import environment


def test_only_harmless_agent_variables_are_inherited() -> None:
    agent = {
        "PATH": "/bin",
        "HOME": "/root",
        "LC_TIME": "C",
        "TZ": "UTC",
        "AWS_SECRET_ACCESS_KEY": "x",
        "HTTPS_PROXY": "http://user:pw@proxy",
        "BAETYL_CONF_FILE": "/etc/baetyl/core.yml",
    }
    assert environment.inherited(agent) == {
        "PATH": "/bin",
        "HOME": "/root",
        "LC_TIME": "C",
        "TZ": "UTC",
    }
    assert environment.inherited({})["PATH"] == environment.DEFAULT_PATH


def test_spec_overrides_inherited_and_platform_overrides_spec() -> None:
    env = environment.build(
        {"PATH": "/bin", "HOME": "/root"},
        [
            EnvVar(name="HOME", value="/srv"),
            EnvVar(name="BAETYL_RUN_MODE", value="kube"),
            EnvVar(
                name="URL", value="http://127.0.0.1:$(BAETYL_SERVICE_DYNAMIC_PORT)/$(PATH_PART)"
            ),
            EnvVar(name="PATH_PART", value="api"),
            EnvVar(name="BACK", value="$(PATH_PART)-$(HOME)"),
        ],
        {"BAETYL_RUN_MODE": "native", "BAETYL_SERVICE_DYNAMIC_PORT": "50200"},
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/srv",
        "BAETYL_RUN_MODE": "native",
        "BAETYL_SERVICE_DYNAMIC_PORT": "50200",
        "URL": "http://127.0.0.1:50200/$(PATH_PART)",  # not defined yet at that point
        "PATH_PART": "api",
        "BACK": "api-/srv",
    }


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)", "x1y2"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$A and ${A}", "$A and ${A}"),
        ("cost: 5$", "cost: 5$"),
    ],
)
def test_references_expand_like_kubernetes(text: str, expanded: str) -> None:
    assert environment.expand(text, {"A": "1", "B": "2"}) == expanded
