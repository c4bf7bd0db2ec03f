"""The desired section, typed: what a node reads from the cloud's desired section."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.desired import EMPTY, DesiredState

names = st.text(min_size=1, max_size=8)
versions = st.dictionaries(names, st.text(min_size=1, max_size=8), max_size=4)


def test_a_section_becomes_a_state_and_back() -> None:
    section = {
        "apps": {"web": "v1"},
        "sysapps": {"baetyl-function": "s2"},
        "nodeprops": {"zone": "a", "blank": ""},
    }
    state = DesiredState.from_section(section)
    assert state.apps == {"web": "v1"}
    assert state.sysapps == {"baetyl-function": "s2"}
    assert state.nodeprops == {"zone": "a", "blank": ""}
    assert state.to_section() == section


@pytest.mark.parametrize(
    ("section", "apps"),
    [
        ({"apps": {"web": "v1", "bad": 3, "empty": "", "none": None}}, {"web": "v1"}),
        ({"apps": "nonsense"}, {}),
        ({"apps": ["web", "v1"]}, {}),
        ({}, {}),
        (None, {}),
    ],
)
def test_malformed_entries_are_left_out_and_the_others_kept(
    section: dict[str, Any] | None, apps: dict[str, str]
) -> None:
    assert DesiredState.from_section(section).apps == apps


def test_a_section_this_version_does_not_know_is_passed_on() -> None:
    section = {"apps": {"web": "v1"}, "future": {"x": 1}}
    state = DesiredState.from_section(section)
    assert state.extra == {"future": {"x": 1}}
    assert state.to_section() == section


def test_states_compare_by_content_and_cannot_be_changed() -> None:
    assert DesiredState.from_section({"apps": {"a": "1"}}) == DesiredState(apps={"a": "1"})
    assert DesiredState.from_section({"apps": {}}) == EMPTY
    given = {"a": "1"}
    states = (DesiredState.from_section({"apps": given}), DesiredState(apps=given))
    for state in states:
        with pytest.raises(TypeError):
            state.apps["a"] = "2"  # type: ignore[index]
    given["a"] = "2"  # the caller's dict changes, the states do not
    assert [state.apps for state in states] == [{"a": "1"}, {"a": "1"}]


@given(apps=versions, sysapps=versions, nodeprops=st.dictionaries(names, st.text(max_size=8)))
def test_a_well_formed_state_survives_the_round_trip(
    apps: dict[str, str], sysapps: dict[str, str], nodeprops: dict[str, str]
) -> None:
    state = DesiredState(apps=apps, sysapps=sysapps, nodeprops=nodeprops)
    assert DesiredState.from_section(state.to_section()) == state
