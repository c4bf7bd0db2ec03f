"""Rendering of what an installing node downloads: the install command, script and manifest.

Pure functions over `string.Template` files in `templates/`; every value is quoted for the
language it lands in (shell words, YAML/JSON strings), so nothing a tenant names can inject code.
"""

from __future__ import annotations

import functools
import json
import shlex
import string
from dataclasses import dataclass
from importlib import resources
from typing import Literal

SCRIPT_RESOURCE = "baetyl-install.sh"
MANIFEST_RESOURCE = "baetyl-init-deployment.yml"
SCRIPT_FILE = "baetyl-install.sh"
"""The file name the native install command saves the script under (in the working directory)."""

Mode = Literal["native", "kube"]
Method = Literal["curl", "wget"]


class _Template(string.Template):
    # `$` is everywhere in shell scripts and Kubernetes `$(VAR)`s; `@@{name}` is nowhere.
    delimiter = "@@"


@dataclass(frozen=True)
class InstallValues:
    """What every rendered file names: the cloud, the token and the node it installs."""

    cloud_url: str
    token: str
    nid: str


def resource_url(cloud_url: str, resource: str, token: str) -> str:
    """`GET /v1/init/<resource>?token=…` on the cloud (tokens are URL-safe as they are)."""
    return f"{cloud_url}/v1/init/{resource}?token={token}"


def install_command(values: InstallValues, *, mode: Mode, method: Method) -> str:
    """The one-liner a user pastes on the node.

    Native: download the script to a file, then run it. Piping it into `sh` would turn a
    refused download (expired token, cloud unreachable) into an empty script and a silent
    success; `&&` stops there instead. Kube: the manifest goes into `kubectl apply -f -`, which
    fails on an empty input by itself.
    """
    if mode == "kube":
        url = shlex.quote(resource_url(values.cloud_url, MANIFEST_RESOURCE, values.token))
        fetch = f"curl -fsSL {url}" if method == "curl" else f"wget -qO- {url}"
        return f"{fetch} | kubectl apply -f -"
    url = shlex.quote(resource_url(values.cloud_url, SCRIPT_RESOURCE, values.token))
    fetch = (
        f"curl -fsSL -o {SCRIPT_FILE} {url}"
        if method == "curl"
        else (f"wget -q -O {SCRIPT_FILE} {url}")
    )
    return f"{fetch} && sh {SCRIPT_FILE}"


def install_script(values: InstallValues, *, wheel_file: str) -> str:
    """The POSIX sh installer for a native node, fetching `wheel_file` from the cloud."""
    wheel_url = f"{values.cloud_url}/v1/init/dist/{wheel_file}"
    return _template(f"{SCRIPT_RESOURCE}.tmpl").substitute(
        nid_comment=_comment(values.nid),
        cloud_url=shlex.quote(values.cloud_url),
        token=shlex.quote(values.token),
        nid=shlex.quote(values.nid),
        wheel_url=shlex.quote(wheel_url),
        wheel_file=shlex.quote(wheel_file),
    )


def deployment_manifest(values: InstallValues, *, image: str) -> str:
    """The Kubernetes objects that run the agent on a K3s/Kubernetes node."""
    return _template(f"{MANIFEST_RESOURCE}.tmpl").substitute(
        nid_comment=_comment(values.nid),
        nid=_yaml(values.nid),
        token=_yaml(values.token),
        cloud_url=_yaml(values.cloud_url),
        image=_yaml(image),
    )


def _yaml(value: str) -> str:
    # A JSON string is a YAML double-quoted scalar: quotes, colons and newlines stay inert.
    return json.dumps(value)


def _comment(value: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in value)


@functools.cache
def _template(name: str) -> _Template:
    text = resources.files("cloud.installer").joinpath("templates", name).read_text("utf-8")
    return _Template(text)
