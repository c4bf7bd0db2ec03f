"""core.yml: defaults, every problem at once with its key path, node identity from the cert."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    CoreConfig,
    load_config,
    node_identity,
    parse_duration,
    read_node_identity,
)
from tests.harness.pki import HarnessPKI

DOCS = Path(__file__).resolve().parents[3] / "docs" / "agent.md"


def write(directory: Path, text: str, name: str = "core.yml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, *, check_files: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_files=check_files)
    return caught.value.problems


def test_minimal_config_takes_every_default(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "cloud: {mqtt: 'mqtts://cloud.example.com'}\n"), check_files=False
    )
    assert config.cloud.host == "cloud.example.com"
    assert config.cloud.port == 8883
    assert config.cloud.keepalive == 30
    assert config.node.cert == Path("/var/lib/baetyl/node/client.pem")
    assert config.store.dir == Path("/var/lib/baetyl/store")
    assert config.run.dir == Path("/var/lib/baetyl/run")
    assert (config.log.dir, config.log.level, config.log.format) == (
        Path("/var/log/baetyl"),
        "info",
        "json",
    )
    assert (config.engine.interval, config.engine.backend, config.engine.mode) == (
        30,
        "native",
        "event",
    )
    assert (config.sync.report_interval, config.sync.timeout, config.sync.mode) == (
        20,
        10,
        "push",
    )
    assert config.api.address == ("127.0.0.1", 30050)
    assert config.native.port_range == (50200, 51000)
    assert config.native.grace_period == 10


def test_example_in_the_docs_is_a_valid_config(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- example core.yml -->\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "docs/agent.md lost its marked example core.yml"
    config = load_config(write(tmp_path, match.group(1)), check_files=False)
    assert config.cloud.port == 8883
    assert config.sync.report_interval == 20


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
cloud:
  mqtt: mqtt://cloud.example.com:1883
sync:
  report_interval: -1
  reportInterval: 3
log: {level: verbose}
engine: {backend: docker}
api: {listen: true}
native: {port_range: [51000, 50200]}
bogus: 1
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_files=False)
    error = caught.value
    assert error.problems == [
        "cloud.mqtt: must be an mqtts:// URL such as 'mqtts://cloud.example.com:8883' "
        '(got "mqtt://cloud.example.com:1883")',
        "log.level: must be one of 'debug', 'info', 'warning' or 'error' (got \"verbose\")",
        "engine.backend: must be one of 'native' or 'kube' (got \"docker\")",
        "sync.report_interval: must be > 0 (got -1)",
        "sync.reportInterval: unknown key (did you mean 'report_interval'?)",
        "api.listen: must be 'host:port' (such as '127.0.0.1:30050'), or false to disable "
        "(got true)",
        "native.port_range: must satisfy 1 <= start <= end <= 65535 (got [51000, 50200])",
        "bogus: unknown key (allowed: api, cloud, engine, function, kube, log, native, node, "
        "objects, run, store, sync, upgrade)",
    ]
    assert str(error).splitlines()[3] == f"{path}: sync.report_interval: must be > 0 (got -1)"


def test_a_missing_section_value_and_wrong_types_are_named(tmp_path: Path) -> None:
    problems = problems_of(
        write(tmp_path, "cloud: {keepalive: 10}\nstore: [a]\nrun: {dir: 5}\nlog: {format: xml}\n")
    )
    assert problems == [
        "cloud.mqtt: required",
        'store: must be a mapping (got ["a"])',
        "run.dir: must be a non-empty path (got 5)",
        "log.format: must be one of 'json' or 'text' (got \"xml\")",
    ]


def test_an_empty_file_needs_only_the_cloud(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "")) == ["cloud: required"]


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "- cloud\n")) == [
        'the top level must be a mapping (got ["cloud"])'
    ]


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud:\n  mqtt: mqtts://a\n log: x\n")
    (problem,) = problems_of(path)
    assert problem.startswith("line 3, column 2: YAML syntax error: ")


def test_duplicate_keys_are_refused_not_silently_merged(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud: {mqtt: 'mqtts://a'}\nsync: {timeout: 5}\nsync: {timeout: 6}\n")
    assert problems_of(path) == ["line 3, column 1: duplicate key 'sync'"]


def test_a_missing_file_is_reported_as_such(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "core.yml") == ["file not found"]


def test_an_unreadable_file_is_reported_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "core.yml").mkdir()
    assert problems_of(tmp_path / "core.yml") == ["cannot read: Is a directory"]
    (tmp_path / "latin1.yml").write_bytes(b"cloud: {mqtt: 'mqtts://caf\xe9'}\n")
    (problem,) = problems_of(tmp_path / "latin1.yml")
    assert problem.startswith("cannot read: 'utf-8' codec can't decode byte 0xe9")


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (30, 30.0),
        (0.5, 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
    ],
)
def test_durations_are_seconds_or_go_style_strings(given: object, seconds: float) -> None:
    assert parse_duration(given) == seconds


@pytest.mark.parametrize(
    "given", [0, -1, "0s", "5x", "", "30 s", "1d", "s", True, None, [1], "1e3"]
)
def test_bad_durations_are_refused(given: object) -> None:
    with pytest.raises(ValueError, match=r"must be"):
        parse_duration(given)


def test_durations_in_the_file_accept_both_forms(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "cloud: {mqtt: 'mqtts://a', keepalive: 1m}\n"
            "engine: {interval: 2m}\nsync: {report_interval: 5, timeout: 1.5s}\n"
            "native: {grace_period: 1m30s}\n",
        ),
        check_files=False,
    )
    assert config.cloud.keepalive == 60
    assert config.engine.interval == 120
    assert (config.sync.report_interval, config.sync.timeout) == (5, 1.5)
    assert config.native.grace_period == 90


def test_polling_timing_is_chosen_with_sync_and_engine_modes(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "cloud: {mqtt: 'mqtts://a'}\nsync: {mode: poll}\nengine: {mode: tick}\n"),
        check_files=False,
    )
    assert (config.sync.mode, config.engine.mode) == ("poll", "tick")


def test_unknown_sync_and_engine_modes_are_refused_with_the_choices(tmp_path: Path) -> None:
    path = write(
        tmp_path, "cloud: {mqtt: 'mqtts://a'}\nsync: {mode: polling}\nengine: {mode: true}\n"
    )
    assert problems_of(path) == [
        "engine.mode: must be one of 'event' or 'tick' (got true)",
        "sync.mode: must be one of 'push' or 'poll' (got \"polling\")",
    ]


def test_mqtt_keepalive_must_fit_the_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud: {mqtt: 'mqtts://a', keepalive: 20h}\n")
    assert problems_of(path) == [
        'cloud.keepalive: must be between 1s and 65535s, as MQTT allows (got "20h")'
    ]


def test_relative_paths_are_relative_to_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    monkeypatch.chdir(tmp_path)
    config = load_config(
        write(
            etc,
            "cloud: {mqtt: 'mqtts://a'}\n"
            "node: {cert: certs/client.pem}\nstore: {dir: ../var/store}\n",
        ),
        check_files=False,
    )
    assert config.node.cert == etc / "certs" / "client.pem"
    assert config.store.dir == etc / ".." / "var" / "store"
    assert config.node.ca == Path("/var/lib/baetyl/node/ca.pem")  # defaults stay absolute


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("false", None),
        ("null", None),
        ("'0.0.0.0:8080'", ("0.0.0.0", 8080)),
        ("'[::1]:30050'", ("::1", 30050)),
        ("'localhost:0'", ("localhost", 0)),
    ],
)
def test_the_local_api_listens_where_told_or_nowhere(
    tmp_path: Path, listen: str, address: tuple[str, int] | None
) -> None:
    path = write(tmp_path, f"cloud: {{mqtt: 'mqtts://a'}}\napi: {{listen: {listen}}}\n")
    assert load_config(path, check_files=False).api.address == address


@pytest.mark.parametrize("listen", ["localhost", "':80'", "'a:99999'", "30050", "'::1:80'"])
def test_bad_listen_addresses_are_refused(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, f"cloud: {{mqtt: 'mqtts://a'}}\napi: {{listen: {listen}}}\n")
    (problem,) = problems_of(path)
    assert problem.startswith("api.listen: ")


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("mqtts://10.0.0.1:18883", "10.0.0.1", 18883),
        ("mqtts://[fd00::1]:8884", "fd00::1", 8884),
        ("mqtts://broker.local/", "broker.local", 8883),
    ],
)
def test_cloud_url_gives_host_and_port(tmp_path: Path, url: str, host: str, port: int) -> None:
    config = load_config(write(tmp_path, f"cloud: {{mqtt: '{url}'}}\n"), check_files=False)
    assert (config.cloud.host, config.cloud.port) == (host, port)


@pytest.mark.parametrize(
    "url",
    ["tcp://a:1883", "mqtts://", "mqtts://a:0", "mqtts://a:70000", "mqtts://a/topic", "a:8883"],
)
def test_bad_cloud_urls_are_refused(tmp_path: Path, url: str) -> None:
    (problem,) = problems_of(write(tmp_path, f"cloud: {{mqtt: '{url}'}}\n"))
    assert problem.startswith("cloud.mqtt: ")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("[50200]", "must be a list of two port numbers"),
        ("[0, 10]", "1 <= start"),
        ("[1, 65536]", "1 <= start"),
        ("['1', 2]", "two port numbers"),
        ("{start: 1}", "two port"),
    ],
)
def test_bad_port_ranges_are_refused(tmp_path: Path, given: str, problem: str) -> None:
    path = write(tmp_path, f"cloud: {{mqtt: 'mqtts://a'}}\nnative: {{port_range: {given}}}\n")
    (found,) = problems_of(path)
    assert found.startswith("native.port_range: ")
    assert problem in found


def test_cert_files_must_exist_unless_told_not_to_check(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "client.key").mkdir()
    path = write(
        tmp_path,
        "cloud: {mqtt: 'mqtts://a'}\n"
        "node: {ca: ca.pem, cert: client.pem, key: client.key}\nsync: {timeout: 0}\n",
    )
    assert problems_of(path, check_files=True) == [
        "sync.timeout: must be > 0 (got 0)",
    ]  # files are checked only once the schema holds
    path.write_text(path.read_text().replace("sync: {timeout: 0}", ""))
    assert problems_of(path, check_files=True) == [
        f"node.cert: {tmp_path / 'client.pem'} does not exist",
        f"node.key: {tmp_path / 'client.key'} is not a regular file",
    ]
    assert load_config(path, check_files=False).node.key == tmp_path / "client.key"


def test_node_identity_comes_from_the_certificate_cn(tmp_path: Path, pki: HarnessPKI) -> None:
    cert = pki.node("tenant-1.edge-node.01")
    path = write(
        tmp_path,
        f"cloud: {{mqtt: 'mqtts://a'}}\n"
        f"node: {{ca: '{pki.ca_file}', cert: '{cert.cert_file}', key: '{cert.key_file}'}}\n",
    )
    config = load_config(path)
    identity = node_identity(config)
    assert (identity.namespace, identity.name) == ("tenant-1", "edge-node.01")
    assert identity.nid == "tenant-1.edge-node.01"


def test_a_cn_that_is_not_a_node_id_is_refused(pki: HarnessPKI) -> None:
    cloud_cert = pki.cloud("r7")  # CN baetyl-cloud:r7
    with pytest.raises(ConfigError, match=r"node\.cert: the certificate CN is not a node id"):
        read_node_identity(cloud_cert.cert_file)


def test_an_unusable_certificate_file_is_reported(tmp_path: Path, pki: HarnessPKI) -> None:
    with pytest.raises(ConfigError, match=r"node\.cert: cannot read the certificate: No such file"):
        read_node_identity(tmp_path / "absent.pem")
    with pytest.raises(ConfigError, match=r"node\.cert: not a PEM certificate"):
        read_node_identity(pki.node("default.n1").key_file)


def test_the_config_is_frozen_once_loaded(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "cloud: {mqtt: 'mqtts://a'}\n"), check_files=False)
    with pytest.raises(ValidationError):
        config.sync.timeout = 1  # type: ignore[misc]
    assert isinstance(config, CoreConfig)


def test_default_config_path_is_under_the_install_prefix() -> None:
    assert Path("/opt/baetyl/etc/baetyl/core.yml") == DEFAULT_CONFIG_PATH
