"""What a rootfs takes over from this machine so that pip inside reaches the same package index:
the CA bundle the host trusts and the host's effective pip settings.

`pip config list` gives the settings of every source at once (files and PIP_* variables). They are
written into the rootfs's /etc/pip.conf, which every pip inside reads (the node's virtualenv too,
also when the agent upgrades itself under systemd, where no PIP_* variable is set). Paths in them
are handled so they mean the same inside: `cert` points at the rootfs's bundle (a copy of the
host's), files (a constraints file) are copied to the same path, and directories (a local
find-links or `file://` index) are listed for the container to bind read-only at the same path.
pip's cache is not taken over here: the container binds the tests' pip cache itself.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Debian's CA bundle: the host's copy replaces the rootfs's."""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
"""CAs added locally (update-ca-certificates): copied too, so a regenerated bundle keeps them."""
_SKIPPED = {"cache-dir", "no-cache-dir", "log", "target", "prefix", "root", "src", "user"}
_PIP_TIMEOUT = 60.0


@dataclass
class HostSettings:
    """The rootfs's /etc/pip.conf, and the host paths it names."""

    pip_conf: str
    files: list[Path] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)


def pip_settings(python: str = sys.executable) -> HostSettings:
    """The host's effective pip settings (`python -m pip config list`) for the rootfs."""
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [python, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=_PIP_TIMEOUT,
        check=True,
    )
    return settings_from(result.stdout)


def settings_from(listing: str) -> HostSettings:
    """HostSettings from `pip config list` output (`global.cert='/x'`, `:env:.find-links='/y'`)."""
    sections: dict[str, dict[str, str]] = {}
    files: list[Path] = []
    directories: list[Path] = []
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or "." not in key:
            continue
        section, _, name = key.rpartition(".")
        section = "global" if section in (":env:", "") else section
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        if name in _SKIPPED:
            continue
        if name == "cert":
            value = str(BUNDLE)
        else:
            for word in value.split():
                path = Path(word.removeprefix("file://"))
                if not path.is_absolute():
                    continue
                if path.is_dir():
                    # A PEP 503 tree links its files relative to `simple/` (`../../files/…`).
                    directories.append(path.parent if path.name == "simple" else path)
                elif path.is_file():
                    files.append(path)
        # Environment variables come last in pip's own order: they win, so they overwrite here.
        sections.setdefault(section, {})[name] = value
    text = "".join(
        f"[{section}]\n" + "".join(f"{name} = {value}\n" for name, value in values.items())
        for section, values in sections.items()
    )
    return HostSettings(text, sorted(set(files)), sorted(set(directories)))


def host_bundle() -> Path:
    """The CA bundle the host's pip and curl trust."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), str(BUNDLE)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(f"no CA bundle on this machine ({BUNDLE}): install ca-certificates")


def apply(rootfs: Path, settings: HostSettings) -> None:
    """Give `rootfs` the host's CA bundle, its local CAs, its pip.conf and the files it names."""
    inside = rootfs / BUNDLE.relative_to("/")
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(host_bundle(), inside)
    if LOCAL_CAS.is_dir():
        target = rootfs / LOCAL_CAS.relative_to("/")
        target.mkdir(parents=True, exist_ok=True)
        for certificate in LOCAL_CAS.glob("*.crt"):
            shutil.copyfile(certificate, target / certificate.name)
    for path in settings.files:
        copied = rootfs / path.relative_to("/")
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copied)
    (rootfs / "etc/pip.conf").write_text(
        "# The build host's pip settings (tools/platforms/hostconf.py).\n" + settings.pip_conf,
        encoding="utf-8",
    )
