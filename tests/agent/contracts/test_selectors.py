"""Label selectors: parsing, canonical rendering, Kubernetes matching and error positions."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts import selectors
from agent.contracts.selectors import Operator, Requirement, Selector, SelectorError

# --- strategies: keys and values that are valid under the Kubernetes label rules -------------

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


def _names(ends: str, inner: str, *, max_inner: int) -> st.SearchStrategy[str]:
    """Names that start and end with a character of `ends`, with `inner` characters between."""
    first, last = st.sampled_from(ends), st.sampled_from(ends)
    middle = st.text(alphabet=inner, max_size=max_inner)
    return first | st.builds(lambda a, b, c: a + b + c, first, middle, last)


# A small fixed pool makes generated labels and selectors share keys and values often; it also
# holds the words the parser treats specially so that they are exercised as plain names.
_COMMON_KEYS = st.sampled_from(["app", "env", "in", "notin", "example.com/zone", "exists"])
_COMMON_VALUES = st.sampled_from(["a", "b", "prod", "7", "in", "notin", "gt"])

dns_labels = _names(_LOWER_ALNUM, _LOWER_ALNUM + "-", max_inner=6)
label_names = _names(_ALNUM, _ALNUM + "-_.", max_inner=61)  # at most 63 characters
prefixes = st.lists(dns_labels, min_size=1, max_size=3).map(".".join)
label_keys = _COMMON_KEYS | label_names | st.builds(lambda p, n: f"{p}/{n}", prefixes, label_names)
non_empty_values = _COMMON_VALUES | label_names
label_values = st.just("") | non_empty_values
label_sets = st.dictionaries(label_keys, label_values, max_size=6)
value_lists = st.lists(non_empty_values, min_size=1, max_size=4)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(label_keys)
    operator = draw(st.sampled_from(list(Operator)))
    values: tuple[str, ...]
    if operator in {Operator.EXISTS, Operator.DOES_NOT_EXIST}:
        values = ()
    elif operator in {Operator.IN, Operator.NOT_IN}:
        values = tuple(draw(value_lists))
    elif operator in {Operator.GREATER_THAN, Operator.LESS_THAN}:
        values = (str(draw(st.integers(min_value=-(10**9), max_value=10**9))),)
    else:
        values = (draw(label_values),)
    return Requirement(key, operator, values)


generated_selectors = st.lists(requirements(), max_size=5).map(lambda rs: Selector(tuple(rs)))


# --- parsing and canonical rendering ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("env=prod", "env=prod", id="equals"),
        pytest.param("  env  =  prod  ", "env=prod", id="equals-spaced"),
        pytest.param("env==prod", "env=prod", id="double-equals-normalised"),
        pytest.param("env == prod", "env=prod", id="double-equals-spaced"),
        pytest.param("env!=prod", "env!=prod", id="not-equals"),
        pytest.param("env\t!=\nprod", "env!=prod", id="not-equals-tab-newline"),
        pytest.param("env=", "env=", id="equals-empty-value"),
        pytest.param("env==", "env=", id="double-equals-empty-value"),
        pytest.param("env != , tier", "env!=,tier", id="not-equals-empty-value-then-more"),
        pytest.param("env in (b,a,b)", "env in (a,b)", id="in-sorted-unique"),
        pytest.param("env in(a)", "env in (a)", id="in-no-space-before-paren"),
        pytest.param(" env  notin  ( a , b ) ", "env notin (a,b)", id="notin-spaced"),
        pytest.param("env", "env", id="exists"),
        pytest.param("!env", "!env", id="does-not-exist"),
        pytest.param("! env", "!env", id="does-not-exist-spaced"),
        pytest.param("replicas>5", "replicas>5", id="greater-than"),
        pytest.param("replicas > 05", "replicas>5", id="greater-than-leading-zero"),
        pytest.param("replicas<-3", "replicas<-3", id="less-than-negative"),
        pytest.param("replicas<+3", "replicas<3", id="less-than-plus-sign"),
        pytest.param("tier=web,env=prod", "env=prod,tier=web", id="sorted-by-key"),
        pytest.param("env,!env,env=a", "env=a,env,!env", id="same-key-sorted-by-operator"),
        pytest.param("a,a", "a", id="duplicates-collapse"),
        pytest.param("example.com/zone=eu-1", "example.com/zone=eu-1", id="prefixed-key"),
        pytest.param("A_b.c=X-y_z.9", "A_b.c=X-y_z.9", id="underscores-dots-upper-case"),
        pytest.param("in=notin", "in=notin", id="keywords-as-key-and-value"),
        pytest.param("in in (in,notin)", "in in (in,notin)", id="keywords-in-set"),
        pytest.param(
            "env = prod ,\n tier notin (db) , !canary",
            "!canary,env=prod,tier notin (db)",
            id="multi-requirement",
        ),
    ],
)
def test_valid_selector_parses_to_canonical_text(text: str, canonical: str) -> None:
    selector = selectors.parse(text)
    assert str(selector) == canonical
    assert selectors.parse(canonical) == selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("env=prod", Requirement("env", Operator.EQUALS, ("prod",)), id="equals"),
        pytest.param("env==prod", Requirement("env", Operator.EQUALS, ("prod",)), id="double"),
        pytest.param("env!=", Requirement("env", Operator.NOT_EQUALS, ("",)), id="not-equals"),
        pytest.param("env in (b,a)", Requirement("env", Operator.IN, ("a", "b")), id="in"),
        pytest.param("env notin (a)", Requirement("env", Operator.NOT_IN, ("a",)), id="notin"),
        pytest.param("env", Requirement("env", Operator.EXISTS), id="exists"),
        pytest.param("!env", Requirement("env", Operator.DOES_NOT_EXIST), id="does-not-exist"),
        pytest.param("n>5", Requirement("n", Operator.GREATER_THAN, ("5",)), id="greater-than"),
        pytest.param("n<5", Requirement("n", Operator.LESS_THAN, ("5",)), id="less-than"),
    ],
)
def test_each_form_parses_to_its_requirement(text: str, expected: Requirement) -> None:
    assert selectors.parse(text).requirements == (expected,)


@pytest.mark.parametrize("text", ["", " ", "\t\r\n  "], ids=["empty", "space", "whitespace"])
def test_blank_selector_is_empty(text: str) -> None:
    selector = selectors.parse(text)
    assert selector.is_empty
    assert selector == Selector()
    assert str(selector) == ""


def test_selectors_with_the_same_requirements_are_equal_and_render_equally() -> None:
    first = selectors.parse("tier in (web, api), env=prod")
    second = selectors.parse("env==prod,tier in (api,web,api)")
    assert first == second
    assert str(first) == str(second) == "env=prod,tier in (api,web)"
    assert hash(first) == hash(second)


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param("env=prod", {"env": "prod"}, True, id="equals-same"),
        pytest.param("env=prod", {"env": "dev"}, False, id="equals-other"),
        pytest.param("env=prod", {}, False, id="equals-absent"),
        pytest.param("env==prod", {"env": "prod"}, True, id="double-equals-same"),
        pytest.param("env=", {"env": ""}, True, id="equals-empty-value-present"),
        pytest.param("env=", {}, False, id="equals-empty-value-absent"),
        pytest.param("env!=prod", {"env": "dev"}, True, id="not-equals-other"),
        pytest.param("env!=prod", {"env": "prod"}, False, id="not-equals-same"),
        pytest.param("env!=prod", {}, True, id="not-equals-absent"),
        pytest.param("env in (a,b)", {"env": "b"}, True, id="in-member"),
        pytest.param("env in (a,b)", {"env": "c"}, False, id="in-non-member"),
        pytest.param("env in (a,b)", {}, False, id="in-absent"),
        pytest.param("env notin (a,b)", {"env": "b"}, False, id="notin-member"),
        pytest.param("env notin (a,b)", {"env": "c"}, True, id="notin-non-member"),
        pytest.param("env notin (a,b)", {}, True, id="notin-absent"),
        pytest.param("env", {"env": ""}, True, id="exists-present-empty"),
        pytest.param("env", {"other": "env"}, False, id="exists-absent"),
        pytest.param("!env", {}, True, id="does-not-exist-absent"),
        pytest.param("!env", {"env": "x"}, False, id="does-not-exist-present"),
        pytest.param("n>5", {"n": "6"}, True, id="greater-than-bigger"),
        pytest.param("n>5", {"n": "5"}, False, id="greater-than-equal"),
        pytest.param("n>5", {"n": "10"}, True, id="greater-than-compares-numbers-not-text"),
        pytest.param("n>5", {"n": "six"}, False, id="greater-than-not-integer"),
        pytest.param("n>5", {}, False, id="greater-than-absent"),
        pytest.param("n>-1", {"n": "0"}, True, id="greater-than-negative-bound"),
        pytest.param("n<5", {"n": "4"}, True, id="less-than-smaller"),
        pytest.param("n<5", {"n": "5"}, False, id="less-than-equal"),
        pytest.param("n<5", {"n": ""}, False, id="less-than-empty-value"),
        pytest.param("n<5", {}, False, id="less-than-absent"),
        pytest.param(
            "env=prod,tier in (web,api),!canary",
            {"env": "prod", "tier": "api", "zone": "eu"},
            True,
            id="and-all-hold",
        ),
        pytest.param(
            "env=prod,tier in (web,api),!canary",
            {"env": "prod", "tier": "api", "canary": "yes"},
            False,
            id="and-one-fails",
        ),
        pytest.param("env=prod,env!=prod", {"env": "prod"}, False, id="and-contradiction"),
        pytest.param("", {"env": "prod"}, False, id="empty-matches-nothing"),
        pytest.param("", {}, False, id="empty-matches-not-even-no-labels"),
    ],
)
def test_selector_matches_labels_like_kubernetes(
    text: str, labels: dict[str, str], *, expected: bool
) -> None:
    assert selectors.parse(text).matches(labels) is expected


# --- invalid selectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        pytest.param("env in (a,b", 11, "expected ',' or ')' after value 'b'", id="unclosed-set"),
        pytest.param("env in a", 7, "expected '(' after 'in'", id="in-without-paren"),
        pytest.param("env notin", 9, "expected '(' after 'notin'", id="notin-at-end"),
        pytest.param("env in ()", 8, "'in' needs at least one value", id="empty-set"),
        pytest.param("env in (a,)", 10, "expected a value after ','", id="set-trailing-comma"),
        pytest.param("env in (,a)", 8, "expected a value after '('", id="set-leading-comma"),
        pytest.param("env in (a b)", 10, "expected ',' or ')' after value 'a'", id="set-no-comma"),
        pytest.param("env=prod,", 9, "expected a label key", id="trailing-comma"),
        pytest.param(",env", 0, "expected a label key", id="leading-comma"),
        pytest.param("env,,tier", 4, "expected a label key", id="empty-requirement"),
        pytest.param("env ~ prod", 4, "expected an operator", id="unknown-operator"),
        pytest.param("env is prod", 4, "expected an operator", id="unknown-word-operator"),
        pytest.param("env=prod tier", 9, "expected ',' or end of selector", id="garbage-after"),
        pytest.param("env in (a) x", 11, "after 'env in (a)'", id="garbage-after-set"),
        pytest.param("!env=prod", 4, "after '!env'", id="operator-after-not-exists"),
        pytest.param("env=!prod", 4, "expected a value after '='", id="symbol-as-value"),
        pytest.param("env == == x", 7, "expected a value after '=='", id="double-operator"),
        pytest.param("env=(a)", 4, "expected a value", id="paren-after-equals"),
        pytest.param("n>five", 2, "expected an integer after '>'", id="greater-than-word"),
        pytest.param("n<", 2, "expected an integer after '<'", id="less-than-at-end"),
        pytest.param("n > 1.5", 4, "expected an integer", id="greater-than-decimal"),
        pytest.param("n>=5", 2, "expected an integer after '>', found '='", id="greater-equals"),
        pytest.param("!", 1, "expected a label key", id="bang-alone"),
        pytest.param("!!env", 1, "expected a label key", id="double-bang"),
        pytest.param("(", 0, "expected a label key", id="paren-alone"),
        pytest.param("tier, -env=prod", 6, "label key '-env'", id="bad-key"),
        pytest.param("a/b/c=1", 0, "prefix 'a/b'", id="bad-key-prefix"),
        pytest.param("k" * 64, 0, "label key", id="key-too-long"),
        pytest.param("env = -prod", 6, "label value '-prod'", id="bad-value"),
        pytest.param("env in (a, b_)", 11, "label value 'b_'", id="bad-value-in-set"),
        pytest.param("env=" + "v" * 64, 4, "label value", id="value-too-long"),
        pytest.param("env=prod\u00e9", 4, "label value", id="non-ascii-value"),
    ],
)
def test_invalid_selector_error_points_at_the_bad_part(
    text: str, position: int, reason: str
) -> None:
    with pytest.raises(SelectorError) as caught:
        selectors.parse(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.text == text
    assert error.position == position
    assert reason in error.reason
    assert reason in str(error)
    assert f"at position {position}" in str(error)


def test_error_message_shows_the_selector_with_a_caret_under_the_bad_part() -> None:
    with pytest.raises(SelectorError) as caught:
        selectors.parse("env in (a,b")
    header, shown, caret = str(caught.value).splitlines()
    assert header == (
        "invalid selector 'env in (a,b' at position 11: "
        "expected ',' or ')' after value 'b', found end of selector"
    )
    assert caret.index("^") - shown.index("env") == 11


def test_caret_stays_aligned_when_the_selector_contains_tabs_and_newlines() -> None:
    with pytest.raises(SelectorError) as caught:
        selectors.parse("env=a,\n\ttier ~ x")
    _, shown, caret = str(caught.value).splitlines()
    assert caught.value.position == 13
    assert shown[caret.index("^")] == "~"


@pytest.mark.parametrize(
    "value", [None, 5, b"env=prod", ["env=prod"]], ids=["none", "int", "bytes", "list"]
)
def test_non_string_selector_is_refused(value: object) -> None:
    with pytest.raises(SelectorError, match="must be a string") as caught:
        selectors.parse(value)  # type: ignore[arg-type]
    assert caught.value.position == 0


# --- building requirements and selectors in code ---------------------------------------------


def test_requirement_normalises_double_equals_and_value_order() -> None:
    built = Requirement("env", Operator.DOUBLE_EQUALS, ("prod",))
    assert built == Requirement("env", Operator.EQUALS, ("prod",))
    assert Requirement("env", Operator.IN, ("b", "a", "b")).values == ("a", "b")
    assert Requirement("n", Operator.GREATER_THAN, ("007",)).values == ("7",)


@pytest.mark.parametrize(
    ("key", "operator", "values"),
    [
        pytest.param("env", Operator.EQUALS, (), id="equals-without-value"),
        pytest.param("env", Operator.NOT_EQUALS, ("a", "b"), id="not-equals-two-values"),
        pytest.param("env", Operator.IN, (), id="in-without-values"),
        pytest.param("env", Operator.NOT_IN, ("a", ""), id="notin-empty-value"),
        pytest.param("env", Operator.EXISTS, ("a",), id="exists-with-value"),
        pytest.param("n", Operator.LESS_THAN, ("x",), id="less-than-not-integer"),
        pytest.param("bad key", Operator.EXISTS, (), id="bad-key"),
        pytest.param("env", Operator.EQUALS, ("bad value",), id="bad-value"),
    ],
)
def test_invalid_requirement_is_refused_when_built(
    key: str, operator: Operator, values: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - names.InvalidName or a plain ValueError
        Requirement(key, operator, values)


def test_selector_from_labels_matches_label_sets_that_contain_them() -> None:
    selector = Selector.from_labels({"tier": "web", "env": "prod"})
    assert str(selector) == "env=prod,tier=web"
    assert selector == selectors.parse("env=prod,tier=web")
    assert selector.matches({"env": "prod", "tier": "web", "zone": "eu"})
    assert not selector.matches({"env": "prod"})


def test_selector_from_no_labels_is_empty_and_matches_nothing() -> None:
    selector = Selector.from_labels({})
    assert selector.is_empty
    assert not selector.matches({})


def test_selector_from_invalid_labels_is_refused() -> None:
    with pytest.raises(ValueError, match="label value"):
        Selector.from_labels({"env": "not valid"})


# --- properties ------------------------------------------------------------------------------


@given(generated_selectors)
def test_canonical_text_parses_back_to_the_same_selector(selector: Selector) -> None:
    assert selectors.parse(str(selector)) == selector


@given(generated_selectors, label_sets)
def test_canonical_text_matches_like_the_selector_it_renders(
    selector: Selector, labels: dict[str, str]
) -> None:
    assert selectors.parse(str(selector)).matches(labels) == selector.matches(labels)


@given(label_sets, label_keys, label_values)
def test_equality_selector_matches_exactly_when_the_label_has_that_value(
    labels: dict[str, str], key: str, value: str
) -> None:
    assert selectors.parse(f"{key}={value}").matches(labels) == (labels.get(key) == value)


@given(label_sets, label_keys, value_lists)
def test_notin_matches_exactly_when_in_does_not(
    labels: dict[str, str], key: str, values: list[str]
) -> None:
    listed = ", ".join(values)
    in_set = selectors.parse(f"{key} in ({listed})")
    not_in_set = selectors.parse(f"{key} notin ({listed})")
    assert not_in_set.matches(labels) == (not in_set.matches(labels))


@given(label_sets, label_keys)
def test_does_not_exist_matches_exactly_when_exists_does_not(
    labels: dict[str, str], key: str
) -> None:
    assert selectors.parse(f"!{key}").matches(labels) == (not selectors.parse(key).matches(labels))


@given(label_sets, st.text(alphabet=" \t\r\n", max_size=5))
def test_empty_selector_matches_no_label_set(labels: dict[str, str], blank: str) -> None:
    assert not selectors.parse(blank).matches(labels)
    assert not Selector().matches(labels)
