"""What `baetylctl` prints: tables per kind, JSON and YAML as the server answered (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from cloud.ctlkit.output import COLUMNS, Result, nothing_found, render, table, timestamp

NODE: dict[str, Any] = {
    "name": "edge-1",
    "namespace": "default",
    "version": "3506c239",
    "createTime": "2026-11-27T03:13:27.998626Z",
    "labels": {"role": "gateway", "env": "prod", "baetyl-node-name": "edge-1"},
    "nodeMode": "native",
    "ready": 1,
}
PAGE: dict[str, Any] = {
    "total": 2,
    "pageNo": 1,
    "pageSize": 0,
    "items": [NODE, {**NODE, "name": "edge-22", "ready": 2, "labels": {}, "version": "v"}],
}


def test_a_node_page_is_a_table_with_aligned_columns() -> None:
    assert render(Result("node", PAGE), "table") == (
        "NAME      READY     MODE     LABELS                  VERSION    CREATED\n"
        "edge-1    online    native   env=prod,role=gateway   3506c239   2026-11-27T03:13:27Z\n"
        "edge-22   offline   native   -                       v          2026-11-27T03:13:27Z\n"
    )


def test_one_object_is_a_table_of_one_row() -> None:
    lines = render(Result("node", NODE), "table").splitlines()
    assert lines[0].split() == ["NAME", "READY", "MODE", "LABELS", "VERSION", "CREATED"]
    assert lines[1].split()[:2] == ["edge-1", "online"]
    assert len(lines) == 2


def test_json_and_yaml_are_the_answer_unchanged() -> None:
    result = Result("node", PAGE, messages=("ignored by json and yaml",))
    assert json.loads(render(result, "json")) == PAGE
    assert yaml.safe_load(render(result, "yaml")) == PAGE


def test_several_answers_are_a_json_list_and_yaml_documents() -> None:
    result = Result("app", [{"name": "a"}, {"name": "b"}])
    assert json.loads(render(result, "json")) == [{"name": "a"}, {"name": "b"}]
    assert list(yaml.safe_load_all(render(result, "yaml"))) == [{"name": "a"}, {"name": "b"}]


def test_yaml_writes_multi_line_text_as_a_block() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    text = render(Result("certificate", {"data": {"certificate": pem}}), "yaml")
    assert "certificate: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n" in text
    assert yaml.safe_load(text) == {"data": {"certificate": pem}}


def test_text_is_not_escaped_in_json_or_yaml() -> None:
    result = Result("config", {"description": "配置 & <tags>"})
    assert "配置 & <tags>" in render(result, "json")
    assert "配置 & <tags>" in render(result, "yaml")


def test_messages_replace_the_table() -> None:
    result = Result("app", {"name": "hello"}, messages=("app/hello created",))
    assert render(result, "table") == "app/hello created\n"


def test_an_empty_list_prints_nothing_and_says_so_elsewhere() -> None:
    assert render(Result("app", {"total": 0, "items": []}), "table") == ""
    assert nothing_found("app") == "no apps found"
    assert nothing_found("registry") == "no registries found"


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        ("node", ["NAME", "READY", "MODE", "LABELS", "VERSION", "CREATED"]),
        ("app", ["NAME", "VERSION", "MODE", "SELECTOR", "SERVICES", "CREATED"]),
        ("config", ["NAME", "VERSION", "DATA", "LABELS", "CREATED"]),
        ("secret", ["NAME", "VERSION", "DATA", "LABELS", "CREATED"]),
        ("registry", ["NAME", "ADDRESS", "USERNAME", "VERSION", "CREATED"]),
        ("certificate", ["NAME", "ISSUER", "SERIAL", "EXPIRES", "CREATED"]),
    ],
)
def test_each_kind_has_its_columns(kind: str, header: list[str]) -> None:
    assert [name for name, _ in COLUMNS[kind]] == header
    assert table(kind, [{"name": "x"}]).splitlines()[0].split() == header


def test_app_rows_show_selector_and_service_names() -> None:
    app = {
        "name": "hello",
        "version": "1",
        "mode": "native",
        "selector": "role=gateway",
        "services": [{"name": "web"}, {"name": "sidecar"}],
    }
    assert table("app", [app]).splitlines()[1].split() == [
        "hello",
        "1",
        "native",
        "role=gateway",
        "web,sidecar",
        "-",
    ]


def test_config_and_secret_rows_count_keys_in_both_data_shapes() -> None:
    as_list = {"name": "a", "data": [{"key": "k", "value": {"type": "kv", "value": "v"}}]}
    as_map = {"name": "b", "data": {"k": "v", "l": "w"}}
    hidden = {"name": "c"}
    rows = [line.split()[:3] for line in table("config", [as_list, as_map, hidden]).splitlines()]
    assert rows[1:] == [["a", "-", "1"], ["b", "-", "2"], ["c", "-", "-"]]


def test_cells_stay_on_one_line() -> None:
    app = {"name": "x", "selector": "a=b,\n c=d"}
    assert table("app", [app]).splitlines()[1].split()[3:5] == ["a=b,", "c=d"]
    assert len(table("app", [app]).splitlines()) == 2


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-11-27T03:13:27.998626Z", "2026-11-27T03:13:27Z"),
        ("2026-11-27T05:13:27+02:00", "2026-11-27T03:13:27Z"),
        ("not a time", "not a time"),
        (None, ""),
    ],
)
def test_times_are_shown_in_utc_to_the_second(value: Any, shown: str) -> None:
    assert timestamp(value) == shown


def test_labels_the_cloud_adds_to_every_row_are_left_out_of_tables() -> None:
    node = {"name": "edge-1", "labels": {"baetyl-node-name": "edge-1", "env": "prod"}}
    assert table("node", [node]).splitlines()[1].split()[3] == "env=prod"
    secret = {"name": "db", "labels": {"secret-type": "config", "team": "data"}}
    assert table("secret", [secret]).splitlines()[1].split()[3] == "team=data"
