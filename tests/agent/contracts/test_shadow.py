"""Shadow rules (DESIGN §5): table-driven cases, then properties checked with hypothesis."""

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contracts import shadow
from agent.contracts.shadow import ShadowError, ShadowLimits

T0 = 1_700_000_000.0
T1 = T0 + 5

# --- merge ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "patch", "expected"),
    [
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
        ({"a": 1}, {"missing": None}, {"a": 1}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": None}}, {"a": {"y": 2}}),
        ({"a": {"x": 1}}, {"a": {"x": None}}, {"a": {}}),
        ({"a": [1, 2, 3]}, {"a": [4]}, {"a": [4]}),
        ({"a": {"x": 1}}, {"a": [1]}, {"a": [1]}),
        ({"a": 5}, {"a": {"x": 1, "y": None}}, {"a": {"x": 1}}),
        (
            {"a": {"x": {"deep": True}}},
            {"a": {"x": {"deeper": 1}}},
            {"a": {"x": {"deep": True, "deeper": 1}}},
        ),
        ({"apps": {"a1": "v1"}}, {"apps": {"a2": "v2"}}, {"apps": {"a1": "v1", "a2": "v2"}}),
        ({"a": 1}, {}, {"a": 1}),
    ],
)
def test_merge_table(
    section: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = copy.deepcopy((section, patch))
    assert shadow.merge(section, patch) == expected
    assert (section, patch) == before, "merge must not mutate its inputs"


# --- delta ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        ({}, {}, {}),
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 1}),
        ({}, {"only": "reported"}, {}),
        ({"apps": {"a1": "v1", "a2": "v2"}}, {"apps": {"a1": "v1"}}, {"apps": {"a2": "v2"}}),
        ({"apps": {"a1": "v2"}}, {"apps": {"a1": "v1", "old": "v0"}}, {"apps": {"a1": "v2"}}),
        ({"a": {"x": 1}}, {"a": 7}, {"a": {"x": 1}}),
        ({"a": [1, 2]}, {"a": [2, 1]}, {"a": [1, 2]}),
        ({"a": True}, {"a": 1}, {"a": True}),
        ({"a": 1}, {"a": 1.0}, {}),
        ({"a": {}}, {}, {"a": {}}),
        ({"a": {}}, {"a": {}}, {}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 1, "d": 2}}}, {}),
    ],
)
def test_delta_table(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert shadow.delta(desired, reported) == expected


# --- apply_update -------------------------------------------------------------------------


def test_new_document_is_empty_at_version_one() -> None:
    doc = shadow.new_document(T0)
    assert doc == {
        "state": {"desired": {}, "reported": {}, "delta": {}},
        "metadata": {"desired": {}, "reported": {}},
        "version": 1,
        "timestamp": T0,
    }


def test_update_merges_bumps_version_stamps_metadata_and_computes_delta() -> None:
    doc = shadow.new_document(T0)
    doc = shadow.apply_update(
        doc, "desired", {"apps": {"a1": "v1", "a2": "v2"}}, version=None, now=T0
    )
    doc = shadow.apply_update(doc, "reported", {"apps": {"a1": "v1"}}, version=2, now=T1)
    assert doc["version"] == 3
    assert doc["timestamp"] == T1
    assert doc["state"]["delta"] == {"apps": {"a2": "v2"}}
    assert doc["metadata"]["desired"] == {
        "apps": {"a1": {"timestamp": T0}, "a2": {"timestamp": T0}}
    }
    assert doc["metadata"]["reported"] == {"apps": {"a1": {"timestamp": T1}}}


def test_metadata_keeps_old_times_for_untouched_leaves_and_drops_deleted_ones() -> None:
    doc = shadow.new_document(T0)
    doc = shadow.apply_update(
        doc, "reported", {"a": {"x": 1, "y": 2}, "b": 3}, version=None, now=T0
    )
    doc = shadow.apply_update(doc, "reported", {"a": {"y": None, "z": [1]}}, version=None, now=T1)
    assert doc["state"]["reported"] == {"a": {"x": 1, "z": [1]}, "b": 3}
    assert doc["metadata"]["reported"] == {
        "a": {"x": {"timestamp": T0}, "z": {"timestamp": T1}},
        "b": {"timestamp": T0},
    }


def test_a_scalar_replaced_by_an_object_gets_metadata_for_its_leaves() -> None:
    doc = shadow.new_document(T0)
    doc = shadow.apply_update(doc, "reported", {"a": 1}, version=None, now=T0)
    doc = shadow.apply_update(doc, "reported", {"a": {"x": 1}}, version=None, now=T1)
    assert doc["metadata"]["reported"] == {"a": {"x": {"timestamp": T1}}}


def test_a_null_section_empties_it() -> None:
    doc = shadow.new_document(T0)
    doc = shadow.apply_update(doc, "desired", {"apps": {"a": "1"}}, version=None, now=T0)
    doc = shadow.apply_update(doc, "desired", None, version=None, now=T1)
    assert doc["state"]["desired"] == {}
    assert doc["metadata"]["desired"] == {}
    assert doc["state"]["delta"] == {}
    assert doc["version"] == 3


@pytest.mark.parametrize(
    ("section", "patch", "version", "code", "fragment"),
    [
        ("delta", {"a": 1}, None, 403, "computed"),
        ("state", {"a": 1}, None, 400, "unknown shadow section"),
        ("reported", [1, 2], None, 400, "object or null"),
        ("reported", "text", None, 400, "object or null"),
        ("reported", {"a": 1}, 7, 409, "version conflict"),
        ("reported", {"a": 1}, True, 400, "integer"),
        ("reported", {"a": float("nan")}, None, 400, "not a JSON number"),
        ("reported", {"a": {1, 2}}, None, 400, "not a JSON value"),
        ("reported", {"k" * 129: 1}, None, 400, "longer than 128"),
        ("reported", {"a": {"k" * 129: 1}}, None, 400, "longer than 128"),
        ("reported", {"n": 2**64}, None, 400, "does not fit in 64 bits"),
        ("reported", {"n": [-(2**63) - 1]}, None, 400, "does not fit in 64 bits"),
        ("reported", {"t": "a\x00b"}, None, 400, "NUL"),
        ("reported", {"a": {"k\x00": 1}}, None, 400, "NUL"),
    ],
)
def test_refused_updates(section: str, patch: Any, version: Any, code: int, fragment: str) -> None:
    doc = shadow.new_document(T0)
    with pytest.raises(ShadowError) as caught:
        shadow.apply_update(doc, section, patch, version=version, now=T1)
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert doc == shadow.new_document(T0)


def _nest(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value  # type: ignore[no-any-return]


def test_the_64_bit_integer_bounds_are_accepted() -> None:
    bounds = {"lo": -(2**63), "hi": 2**63 - 1}
    doc = shadow.apply_update(shadow.new_document(1.0), "reported", bounds, version=None, now=2.0)
    assert doc["state"]["reported"] == bounds


def test_depth_eight_is_allowed_and_nine_is_refused() -> None:
    doc = shadow.new_document(T0)
    shadow.apply_update(doc, "reported", _nest(8), version=None, now=T1)
    with pytest.raises(ShadowError) as caught:
        shadow.apply_update(doc, "reported", _nest(9), version=None, now=T1)
    assert caught.value.code == 400


def test_arrays_count_towards_depth() -> None:
    doc = shadow.new_document(T0)
    patch: Any = [[[[[[[1]]]]]]]  # seven arrays inside a key: depth 8
    shadow.apply_update(doc, "reported", {"a": patch}, version=None, now=T1)
    with pytest.raises(ShadowError):
        shadow.apply_update(doc, "reported", {"a": [patch]}, version=None, now=T1)


def test_size_limit_is_checked_on_the_merged_section() -> None:
    limits = ShadowLimits(max_section_bytes=100)
    doc = shadow.new_document(T0)
    doc = shadow.apply_update(doc, "reported", {"a": "x" * 40}, version=None, now=T0, limits=limits)
    with pytest.raises(ShadowError) as caught:
        shadow.apply_update(doc, "reported", {"b": "y" * 60}, version=None, now=T1, limits=limits)
    assert caught.value.code == 413
    assert doc["state"]["reported"] == {"a": "x" * 40}


def test_default_size_limit_is_128_kib() -> None:
    doc = shadow.new_document(T0)
    overhead = len('{"a":""}')
    shadow.apply_update(doc, "reported", {"a": "x" * (128 * 1024 - overhead)}, version=None, now=T1)
    with pytest.raises(ShadowError) as caught:
        shadow.apply_update(
            doc, "reported", {"a": "x" * (128 * 1024 - overhead + 1)}, version=None, now=T1
        )
    assert caught.value.code == 413


def test_size_counts_utf8_bytes_not_characters() -> None:
    limits = ShadowLimits(max_section_bytes=20)
    doc = shadow.new_document(T0)
    with pytest.raises(ShadowError):
        shadow.apply_update(doc, "reported", {"a": "é" * 8}, version=None, now=T1, limits=limits)


def test_shadow_error_carries_code_and_message() -> None:
    err = ShadowError(409, "version conflict")
    assert (err.code, err.message) == (409, "version conflict")
    assert str(err) == "409: version conflict"


# --- properties ----------------------------------------------------------------------------

KEYS = st.text(alphabet="abcdef", min_size=1, max_size=3)
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="xyz", max_size=3)
LEAVES = st.booleans() | st.integers(-5, 5) | st.text(alphabet="xyz", max_size=3)


def _values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4)
        ),
        max_leaves=12,
    )


PATCHES = st.dictionaries(KEYS, _values(SCALARS), max_size=5)
SECTIONS = st.dictionaries(KEYS, _values(LEAVES), max_size=5)


def _leaves(value: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Paths to every leaf: a non-object value or an empty object."""
    found: dict[tuple[str, ...], Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            found.update(_leaves(item, (*prefix, key)))
        else:
            found[(*prefix, key)] = item
    return found


def _lookup(value: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _json_same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@given(SECTIONS, PATCHES)
def test_merging_a_patch_twice_equals_merging_it_once(
    section: dict[str, Any], patch: dict[str, Any]
) -> None:
    once = shadow.merge(section, patch)
    assert shadow.merge(once, patch) == once


@given(SECTIONS, PATCHES)
def test_null_deletes_and_no_null_object_value_survives_a_merge(
    section: dict[str, Any], patch: dict[str, Any]
) -> None:
    merged = shadow.merge(section, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        else:
            assert key in merged
    # nulls inside objects are deletions, never stored (nulls inside arrays are values)
    assert _no_nulls_in_objects(merged)


@given(SECTIONS, SECTIONS)
def test_delta_is_empty_exactly_when_every_desired_leaf_is_reported_equal(
    desired: dict[str, Any], reported: dict[str, Any]
) -> None:
    all_present = all(
        found and _satisfies(value, leaf)
        for path, leaf in _leaves(desired).items()
        for found, value in [_lookup(reported, path)]
    )
    assert (shadow.delta(desired, reported) == {}) == all_present


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        ({"a": {}}, {"a": {"a": False}}, {}),  # an empty desired object asks nothing of its keys
        ({"a": {}}, {"a": 1}, {"a": {}}),  # but it does ask for an object
        ({"a": {}}, {}, {"a": {}}),
    ],
)
def test_an_empty_desired_object_is_satisfied_by_any_reported_object(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert shadow.delta(desired, reported) == expected


def _satisfies(reported: Any, desired_leaf: Any) -> bool:
    """Whether a reported value meets a desired leaf (an empty object is met by any object)."""
    if isinstance(desired_leaf, dict):
        return isinstance(reported, dict)
    return _json_same(reported, desired_leaf) and type(reported) is type(desired_leaf)


@given(SECTIONS, SECTIONS)
def test_delta_holds_only_desired_keys(desired: dict[str, Any], reported: dict[str, Any]) -> None:
    result = shadow.delta(desired, reported)
    for path in _leaves(result):
        found, _ = _lookup(desired, path)
        assert found


@given(SECTIONS)
def test_delta_of_a_section_with_itself_is_empty(section: dict[str, Any]) -> None:
    assert shadow.delta(section, copy.deepcopy(section)) == {}


def _no_nulls_in_objects(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls_in_objects(v) for v in value.values())
    return True


UPDATES = st.lists(
    st.tuples(st.sampled_from(["desired", "reported"]), PATCHES | st.none()), min_size=1, max_size=6
)


@given(UPDATES)
def test_every_accepted_update_raises_version_by_exactly_one(
    updates: list[tuple[str, Any]],
) -> None:
    doc = shadow.new_document(T0)
    for step, (section, patch) in enumerate(updates, start=1):
        new = shadow.apply_update(doc, section, patch, version=doc["version"], now=T0 + step)
        assert new["version"] == doc["version"] + 1
        assert new["state"]["delta"] == shadow.delta(
            new["state"]["desired"], new["state"]["reported"]
        )
        assert _no_nulls_in_objects(new["state"][section])
        doc = new


@given(UPDATES)
def test_metadata_mirrors_the_structure_of_each_section(updates: list[tuple[str, Any]]) -> None:
    doc = shadow.new_document(T0)
    for step, (section, patch) in enumerate(updates, start=1):
        doc = shadow.apply_update(doc, section, patch, version=None, now=T0 + step)
    for section in ("desired", "reported"):
        leaves = _leaves(doc["state"][section])
        stamps = {path[:-1]: value for path, value in _leaves(doc["metadata"][section]).items()}
        assert set(stamps) == set(leaves)
        assert all(isinstance(t, float) and t > T0 for t in stamps.values())


@given(SECTIONS, PATCHES, st.integers(min_value=1, max_value=50))
def test_a_stale_version_gives_409_and_changes_nothing(
    section: dict[str, Any], patch: dict[str, Any], stale: int
) -> None:
    doc = shadow.apply_update(shadow.new_document(T0), "reported", section, version=None, now=T0)
    if stale == doc["version"]:
        stale += 1
    before = copy.deepcopy(doc)
    with pytest.raises(ShadowError) as caught:
        shadow.apply_update(doc, "reported", patch, version=stale, now=T1)
    assert caught.value.code == 409
    assert doc == before


@settings(max_examples=50)
@given(PATCHES, st.integers(min_value=10, max_value=200))
def test_over_the_size_limit_gives_413_and_changes_nothing(
    patch: dict[str, Any], limit: int
) -> None:
    limits = ShadowLimits(max_section_bytes=limit)
    doc = shadow.new_document(T0)
    before = copy.deepcopy(doc)
    merged = shadow.merge({}, patch)
    size = len(json.dumps(merged, separators=(",", ":")).encode())
    if size <= limit:
        assert shadow.apply_update(doc, "reported", patch, version=None, now=T1, limits=limits)
    else:
        with pytest.raises(ShadowError) as caught:
            shadow.apply_update(doc, "reported", patch, version=None, now=T1, limits=limits)
        assert caught.value.code == 413
    assert doc == before


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@given(PATCHES, st.integers(min_value=1, max_value=4))
def test_over_the_depth_limit_gives_400_and_changes_nothing(
    patch: dict[str, Any], max_depth: int
) -> None:
    limits = ShadowLimits(max_depth=max_depth)
    doc = shadow.new_document(T0)
    before = copy.deepcopy(doc)
    if _depth(patch) <= max_depth:
        assert shadow.apply_update(doc, "reported", patch, version=None, now=T1, limits=limits)
    else:
        with pytest.raises(ShadowError) as caught:
            shadow.apply_update(doc, "reported", patch, version=None, now=T1, limits=limits)
        assert caught.value.code == 400
    assert doc == before


@given(UPDATES, st.sampled_from(["delta", "metadata", "version", ""]))
def test_any_rejected_update_leaves_the_document_unchanged(
    updates: list[tuple[str, Any]], bad_section: str
) -> None:
    doc = shadow.new_document(T0)
    for section, patch in updates:
        doc = shadow.apply_update(doc, section, patch, version=None, now=T1)
    before = copy.deepcopy(doc)
    with pytest.raises(ShadowError):
        shadow.apply_update(doc, bad_section, {"a": 1}, version=None, now=T1)
    with pytest.raises(ShadowError):
        shadow.apply_update(doc, "reported", {"a": 1}, version=doc["version"] + 1, now=T1)
    assert doc == before


@given(SECTIONS, PATCHES)
def test_apply_update_does_not_mutate_its_inputs(
    section: dict[str, Any], patch: dict[str, Any]
) -> None:
    doc = shadow.apply_update(shadow.new_document(T0), "desired", section, version=None, now=T0)
    before = copy.deepcopy((doc, patch))
    shadow.apply_update(doc, "desired", patch, version=None, now=T1)
    assert (doc, patch) == before
