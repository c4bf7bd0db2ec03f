"""Names, nids and labels (DESIGN §3): what is accepted and what is refused with which message."""

import pytest

from agent.contracts import names


@pytest.mark.parametrize(
    "ns",
    ["default", "a", "tenant-1", "0", "a" * 63],
)
def test_valid_namespaces_are_accepted(ns: str) -> None:
    assert names.check_namespace(ns) == ns


@pytest.mark.parametrize(
    ("ns", "fragment"),
    [
        ("", "non-empty"),
        ("a" * 64, "longer than 63"),
        ("Default", "lower-case"),
        ("-a", "start and end"),
        ("a-", "start and end"),
        ("a.b", "lower-case letters, digits and '-'"),
        ("a_b", "lower-case"),
    ],
)
def test_invalid_namespaces_are_refused_with_reason(ns: str, fragment: str) -> None:
    with pytest.raises(names.InvalidName, match=fragment):
        names.check_namespace(ns)


@pytest.mark.parametrize("name", ["ab", "node-1", "n1.edge", "a" * 63, "0.0"])
def test_valid_resource_names_are_accepted(name: str) -> None:
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", ["a", "", "-ab", "ab-", "Ab", "a_b", "a b", "a" * 64, "ab/c"])
def test_invalid_resource_names_are_refused(name: str) -> None:
    with pytest.raises(names.InvalidName):
        names.check_name(name)


def test_app_names_are_limited_to_55_characters() -> None:
    assert names.check_app_name("a" * 55)
    with pytest.raises(names.InvalidName, match="longer than 55"):
        names.check_app_name("a" * 56)


def test_service_names_refuse_dots() -> None:
    assert names.check_service_name("web-1") == "web-1"
    with pytest.raises(names.InvalidName):
        names.check_service_name("web.1")


def test_nid_is_built_and_split_at_the_first_dot() -> None:
    nid = names.make_nid("default", "edge.node-1")
    assert nid == "default.edge.node-1"
    assert names.split_nid(nid) == ("default", "edge.node-1")


@pytest.mark.parametrize(
    ("nid", "fragment"),
    [
        ("nodot", "form '<namespace>.<node>'"),
        (".node", "namespace must be a non-empty"),
        ("default.", "node name must be a non-empty"),
        ("default.n", "node name 'n'"),
        ("Default.node", "namespace 'Default'"),
        ("default.no+de", "node name"),
        ("baetyl-cloud:r1", "form"),
    ],
)
def test_invalid_nids_are_refused_naming_the_bad_part(nid: str, fragment: str) -> None:
    with pytest.raises(names.InvalidName, match=fragment.replace("(", r"\(")):
        names.split_nid(nid)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("baetyl.io/role", True),
        ("a.b.c/x_y-z.1", True),
        ("A", True),
        ("", False),
        ("/x", False),
        ("Bad_Prefix/x", False),
        ("x/", False),
        ("-x", False),
        ("x" * 64, False),
        ("a" * 63, True),
    ],
)
def test_label_keys_follow_kubernetes_rules(key: str, ok: bool) -> None:
    if ok:
        assert names.check_label_key(key) == key
    else:
        with pytest.raises(names.InvalidName):
            names.check_label_key(key)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("v1", True), ("a.b_c-d", True), ("-v", False), ("v" * 64, False), ("a b", False)],
)
def test_label_values_follow_kubernetes_rules(value: str, ok: bool) -> None:
    if ok:
        assert names.check_label_value(value) == value
    else:
        with pytest.raises(names.InvalidName):
            names.check_label_value(value)


def test_a_bad_label_value_names_its_key() -> None:
    with pytest.raises(names.InvalidName, match="label 'zone'"):
        names.check_labels({"app": "x", "zone": "not valid"})
