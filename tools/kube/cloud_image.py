"""The cloud's container image, built offline from the wheel: what the manifests of
`baetyl-cloud kube-manifest` run (`deploy/kubernetes/cloud/`, docs/kubernetes.md).

The wheel with its `cloud` and `postgres` extras, `baetyl-cloud` and `baetylctl`, on this
machine's Python (tools/kube/wheel_image), plus what `baetyl-cloud broker` runs: this machine's
Mosquitto with the shared libraries it loads, the node-limits plugin compiled here against that
Mosquitto's headers (the image has no compiler; BAETYL_NODE_LIMITS_PLUGIN names it), and a
`mosquitto` account to drop to. The wheel itself is in `/opt/baetyl-cloud/dist`, served to
installing nodes (`serve --dist-dir`). Cached by the wheel's digest and Mosquitto's.

    python -m tools.kube.cloud_image --wheel dist/baetyl_py-0.1.0-py3-none-any.whl --out F.tar
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from agent.contracts.version import VERSION
from cloud.broker import node_limits_plugin
from cloud.broker.node_limits_plugin import PREBUILT_ENV
from cloud.kube_manifest import CLOUD_IMAGE, DIST_DIR
from tools.kube import wheel_image
from tools.kube.images import Entry

MOSQUITTO = Path("/usr/sbin/mosquitto")
ZONEINFO = Path("/usr/share/zoneinfo")
"""The time zone database: the ORM asks for ZoneInfo("UTC") (Debian's `tzdata`)."""
PLUGIN = "usr/lib/baetyl-cloud/baetyl_node_limits.so"
MOSQUITTO_UID = 101
"""The broker's account in the image (Mosquitto drops to it from root)."""
DEFAULT_REFERENCE = f"{CLOUD_IMAGE}:{VERSION}"


def broker_entries(wheel: Path, work: Path, known: set[str]) -> list[Entry]:
    """Mosquitto, its libraries, the plugin, the accounts, and the wheel for nodes."""
    if not MOSQUITTO.is_file():
        raise RuntimeError(f"{MOSQUITTO} is missing: apt-get install mosquitto")
    plugin = node_limits_plugin.build(work / "plugin")
    entries = wheel_image.library_entries([MOSQUITTO, plugin], known)
    directories = [
        "usr/sbin",
        "usr/lib/baetyl-cloud",
        "opt/baetyl-cloud",
        DIST_DIR.lstrip("/"),
        "var",
        "var/lib",
        "var/lib/baetyl-cloud",
    ]
    for directory in directories:
        if directory not in known:
            known.add(directory)
            entries.append(Entry(directory, directory=True))
    entries += zoneinfo_entries(known)
    uid = MOSQUITTO_UID
    entries += [
        Entry("usr/sbin/mosquitto", MOSQUITTO.read_bytes(), 0o755),
        Entry(PLUGIN, plugin.read_bytes(), 0o644),
        Entry(f"{DIST_DIR.lstrip('/')}/{wheel.name}", wheel.read_bytes(), 0o644),
        Entry(
            "etc/passwd",
            b"root:x:0:0:root:/:/bin/false\n"
            + f"mosquitto:x:{uid}:{uid}:mosquitto:/var/lib/baetyl-cloud:/bin/false\n".encode()
            + b"nobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        ),
        Entry(
            "etc/group",
            f"root:x:0:\nmosquitto:x:{uid}:\nnogroup:x:65534:\n".encode(),
            0o644,
        ),
    ]
    return entries


def zoneinfo_entries(known: set[str]) -> list[Entry]:
    """This machine's time zone database, without its `right/` and `posix/` copies."""
    if not (ZONEINFO / "Etc" / "UTC").is_file():
        raise RuntimeError(f"{ZONEINFO} is missing: apt-get install tzdata")
    entries = []
    for directory in ("usr/share", "usr/share/zoneinfo"):
        if directory not in known:
            known.add(directory)
            entries.append(Entry(directory, directory=True))
    for path in sorted(ZONEINFO.rglob("*")):
        relative = path.relative_to(ZONEINFO)
        if relative.parts[0] in ("right", "posix"):
            continue
        name = f"usr/share/zoneinfo/{relative}"
        known.add(name)
        if path.is_symlink():
            entries.append(Entry(name, link=str(path.readlink())))
        elif path.is_dir():
            entries.append(Entry(name, directory=True))
        elif path.is_file():
            entries.append(Entry(name, path.read_bytes(), 0o644))
    return entries


def _cache_key() -> bytes:
    digest = hashlib.sha256(node_limits_plugin.source_text() + Path(__file__).read_bytes())
    if MOSQUITTO.is_file():
        digest.update(MOSQUITTO.read_bytes())
    return digest.digest()


CLOUD = wheel_image.WheelImageSpec(
    name="cloud",
    extras="cloud,postgres,s3",
    commands={"baetyl-cloud": "cloud.cli", "baetylctl": "cloud.ctl"},
    entrypoint=("baetyl-cloud",),
    command=("--help",),
    env=(f"{PREBUILT_ENV}=/{PLUGIN}",),
    additions=broker_entries,
    cache_key=_cache_key,
)


def build(wheel: Path, out: Path | None = None, reference: str = DEFAULT_REFERENCE) -> Path:
    """The cloud image's docker-archive (cached); its path, or `out` when given."""
    return wheel_image.build(CLOUD, wheel, reference, out)


def main(argv: list[str] | None = None) -> int:
    """`--wheel W --out F.tar [--tag REF]`."""
    return wheel_image.main(CLOUD, DEFAULT_REFERENCE, argv)


if __name__ == "__main__":
    sys.exit(main())
