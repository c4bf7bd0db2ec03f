"""The Debian mirror this machine's apt already uses, read from its apt sources.

A rootfs is bootstrapped from the same mirror the host installs its own packages from, so it works
wherever the host's apt works (a local mirror, a proxy, a snapshot), and no host name is written
into the code. `BAETYL_DEBIAN_MIRROR` overrides it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")
MIRROR_ENV = "BAETYL_DEBIAN_MIRROR"


class NoMirror(RuntimeError):
    """No apt source names a Debian mirror for the suite; the message says how to give one."""


@dataclass(frozen=True)
class Source:
    """One `deb` entry of the apt sources: its URI, suites, components and keyring (if any)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    keyring: str | None = None


def mirror(suite: str, apt_dir: Path = APT_DIR) -> Source:
    """The first `deb` source that serves `suite` with the `main` component."""
    override = os.environ.get(MIRROR_ENV)
    if override:
        return Source(override.strip(), (suite,), ("main",))
    for source in sources(apt_dir):
        if suite in source.suites and "main" in source.components:
            return source
    raise NoMirror(
        f"no apt source under {apt_dir} serves Debian {suite} (main): set {MIRROR_ENV} to a "
        "Debian mirror URL (for example the one your apt uses for Debian)"
    )


def sources(apt_dir: Path = APT_DIR) -> Iterator[Source]:
    """Every `deb` source in apt's order: sources.list, then sources.list.d/*.list and *.sources."""
    files = [apt_dir / "sources.list"]
    files += sorted(
        path
        for path in (apt_dir / "sources.list.d").glob("*")
        if path.suffix in (".list", ".sources")
    )
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        yield from (deb822(text) if path.suffix == ".sources" else one_line(text))


_OPTIONS = re.compile(r"^\[([^\]]*)\]\s*")


def one_line(text: str) -> Iterator[Source]:
    """The `deb URI SUITE COMPONENT…` lines of a sources.list (a signed-by option is kept)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        keyring = None
        options = _OPTIONS.match(rest)
        if options:
            for option in options.group(1).split():
                name, _, value = option.partition("=")
                if name == "signed-by":
                    keyring = value
            rest = rest[options.end() :]
        words = rest.split()
        if len(words) >= 3:
            yield Source(words[0], (words[1],), tuple(words[2:]), keyring)


def deb822(text: str) -> Iterator[Source]:
    """The `Types: deb` stanzas of a .sources file (a Signed-By that is a path is kept)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            name, _, value = raw.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        keyring = fields.get("signed-by")
        if keyring is not None and not keyring.startswith("/"):
            keyring = None  # an inline key: debootstrap takes a keyring file only
        for uri in fields.get("uris", "").split():
            yield Source(
                uri,
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                keyring,
            )
