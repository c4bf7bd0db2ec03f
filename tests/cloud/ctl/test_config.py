"""Where `baetylctl` finds its server and token: flags, environment, config file (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.ctlkit.config import (
    DEFAULT_URL,
    Target,
    config_path,
    normalize_url,
    read_config,
    resolve,
)
from cloud.ctlkit.errors import CtlError


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose config file would be under tmp_path (and does not exist yet)."""
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def write_config(env: dict[str, str], text: str, mode: int = 0o600) -> Path:
    path = config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_config_path_honours_xdg_config_home_and_falls_back_to_home(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/baetyl/config.yaml")
    assert config_path({"HOME": "/h"}) == Path("/h/.config/baetyl/config.yaml")
    assert config_path({"XDG_CONFIG_HOME": " ", "HOME": "/h"}) == Path(
        "/h/.config/baetyl/config.yaml"
    )


def test_flags_beat_environment_and_environment_beats_the_file(env: dict[str, str]) -> None:
    write_config(env, "url: http://file:1\ntoken: file-token\n")
    warnings: list[str] = []
    assert resolve(url=None, token=None, env=env, warn=warnings.append) == Target(
        "http://file:1", "file-token"
    )
    env.update(BAETYL_URL="http://env:2", BAETYL_TOKEN="env-token")
    assert resolve(url=None, token=None, env=env, warn=warnings.append) == Target(
        "http://env:2", "env-token"
    )
    chosen = resolve(url="http://flag:3/", token="flag-token", env=env, warn=warnings.append)
    assert chosen == Target("http://flag:3", "flag-token")
    assert warnings == []


def test_each_setting_is_resolved_on_its_own(env: dict[str, str]) -> None:
    write_config(env, "url: http://file:1\ntoken: file-token\n")
    mixed = resolve(url="http://flag:3", token=None, env=env, warn=print)
    assert mixed == Target("http://flag:3", "file-token")
    env["BAETYL_TOKEN"] = "env-token"
    assert resolve(url=None, token=None, env=env, warn=print) == Target(
        "http://file:1", "env-token"
    )


def test_blank_values_count_as_unset(env: dict[str, str]) -> None:
    env.update(BAETYL_URL="", BAETYL_TOKEN="  ")
    write_config(env, "token: from-file\n")
    assert resolve(url="", token=None, env=env, warn=print) == Target(DEFAULT_URL, "from-file")


def test_the_url_defaults_to_the_local_cloud(env: dict[str, str]) -> None:
    assert resolve(url=None, token="t", env=env, warn=print).url == DEFAULT_URL


def test_a_missing_token_names_every_place_to_put_one(env: dict[str, str]) -> None:
    with pytest.raises(CtlError) as caught:
        resolve(url=None, token=None, env=env, warn=print)
    message = caught.value.message
    assert "--token" in message
    assert "BAETYL_TOKEN" in message
    assert str(config_path(env)) in message


def test_a_fully_given_command_line_does_not_read_the_file(env: dict[str, str]) -> None:
    write_config(env, "url: [broken")
    assert resolve(url="http://a", token="t", env=env, warn=print) == Target("http://a", "t")


def test_a_config_file_others_can_read_draws_a_warning(env: dict[str, str]) -> None:
    path = write_config(env, "token: t\n", mode=0o644)
    warnings: list[str] = []
    assert read_config(path, warn=warnings.append) == {"token": "t"}
    assert warnings == [
        f"config file {path} holds a token and other users can read it; run: chmod 600 {path}"
    ]


def test_a_readable_config_file_without_a_token_is_fine(env: dict[str, str]) -> None:
    path = write_config(env, "url: http://a\n", mode=0o644)
    warnings: list[str] = []
    assert read_config(path, warn=warnings.append) == {"url": "http://a"}
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("url: [unclosed", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping with keys url and token"),
        ("url: http://a\nserver: x\ntoeken: y\n", "unknown key(s) server, toeken"),
        ("token: 42\n", "token must be a string"),
    ],
)
def test_a_broken_config_file_is_an_error_naming_the_file(
    env: dict[str, str], text: str, problem: str
) -> None:
    path = write_config(env, text)
    with pytest.raises(CtlError) as caught:
        read_config(path, warn=print)
    assert str(path) in caught.value.message
    assert problem in caught.value.message


def test_an_absent_or_empty_config_file_holds_no_settings(env: dict[str, str]) -> None:
    assert read_config(config_path(env), warn=print) == {}
    assert read_config(write_config(env, ""), warn=print) == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:9004", "http://127.0.0.1:9004"),
        ("https://cloud.example.com/", "https://cloud.example.com"),
        ("https://gw.example.com/baetyl/", "https://gw.example.com/baetyl"),
    ],
)
def test_urls_lose_their_trailing_slash(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    "given", ["127.0.0.1:9004", "ftp://host", "http://", "http://h/?a=b", "http://h/#x"]
)
def test_urls_that_are_not_http_roots_are_refused(given: str) -> None:
    with pytest.raises(CtlError, match="server URL"):
        normalize_url(given)
