"""Where `baetylctl` finds the server and its token: flags, then environment, then a config file.

Each setting is resolved on its own (a `--url` flag and a token from the file combine), so one
config file can hold the token while scripts point at different servers. The file lives at
`$XDG_CONFIG_HOME/baetyl/config.yaml` (`~/.config/baetyl/config.yaml` by default) and holds
`url:` and `token:`; since a token is a credential, a file other users can read draws a warning.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cloud.ctlkit.errors import CtlError

URL_ENV = "BAETYL_URL"
TOKEN_ENV = "BAETYL_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_URL = "http://127.0.0.1:9004"  # the cloud's default listen address (CloudSettings.port)
CONFIG_KEYS = ("url", "token")
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """The server to talk to: its root URL (no trailing slash) and the bearer token."""

    url: str
    token: str


def config_path(env: Mapping[str, str]) -> Path:
    """The config file: `$XDG_CONFIG_HOME/baetyl/config.yaml`, else under `~/.config`."""
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "baetyl" / "config.yaml"


def read_config(path: Path, *, warn: Warn) -> dict[str, str]:
    """The `url`/`token` settings of the config file; an absent file is no settings at all."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CtlError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CtlError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise CtlError(f"config file {path} must be a mapping with keys url and token")
    unknown = sorted(str(key) for key in loaded if key not in CONFIG_KEYS)
    if unknown:
        raise CtlError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(CONFIG_KEYS)}"
        )
    settings: dict[str, str] = {}
    for key in CONFIG_KEYS:
        value = loaded.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise CtlError(f"config file {path}: {key} must be a string")
        if value.strip():
            settings[key] = value.strip()
    if "token" in settings and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"config file {path} holds a token and other users can read it; run: chmod 600 {path}")
    return settings


def resolve(
    *,
    url: str | None,
    token: str | None,
    env: Mapping[str, str],
    warn: Warn,
) -> Target:
    """The target from flags (`url`, `token`), else environment, else the config file.

    The file is read only when a flag and its variable leave something open, so a broken file
    does not stand in the way of a fully specified command line.
    """
    chosen_url = _given(url) or _given(env.get(URL_ENV))
    chosen_token = _given(token) or _given(env.get(TOKEN_ENV))
    path = config_path(env)
    if chosen_url is None or chosen_token is None:
        settings = read_config(path, warn=warn)
        chosen_url = chosen_url or settings.get("url")
        chosen_token = chosen_token or settings.get("token")
    if chosen_token is None:
        raise CtlError(
            f"no API token: pass --token, set {TOKEN_ENV}, or write 'token: ...' to {path} "
            "(the cloud writes an admin token to admin.token in its data directory)"
        )
    return Target(url=normalize_url(chosen_url or DEFAULT_URL), token=chosen_token)


def normalize_url(url: str) -> str:
    """`url` without a trailing slash, refused unless it is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CtlError(f"server URL {url!r} must look like http://host:port or https://host")
    if parts.query or parts.fragment:
        raise CtlError(f"server URL {url!r} must not have a query or a fragment")
    return url.rstrip("/")


def _given(value: str | None) -> str | None:
    """A setting's value, or None when it is missing or blank (an empty variable is unset)."""
    if value is None or not value.strip():
        return None
    return value.strip()
