"""`diff` gives the smallest patch that `shadow.merge` turns into the new section."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.shadow import json_equal, merge
from agent.core.sync.diff import diff

scalars = st.one_of(
    st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.floats(allow_nan=False, width=16)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
    ),
    max_leaves=12,
)
sections = st.dictionaries(st.sampled_from("abcdef"), values, max_size=5)


@given(sections, sections)
def test_merging_the_diff_gives_the_new_section(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert json_equal(merge(old, diff(old, new)), new)


@given(sections)
def test_nothing_changed_means_an_empty_patch(section: dict[str, Any]) -> None:
    assert diff(section, section) == {}


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, {"b": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 3}}, {"a": {"y": 3}}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": [1, 2]}, {"a": [1, 2]}, {}),
        ({"a": [1, 2]}, {"a": [2, 1]}, {"a": [2, 1]}),
        ({"a": 1}, {"a": True}, {"a": True}),
        (
            {"apps": {"web": "v1", "db": "v1"}},
            {"apps": {"web": "v2"}},
            {"apps": {"web": "v2", "db": None}},
        ),
    ],
)
def test_table(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert diff(old, new) == patch
