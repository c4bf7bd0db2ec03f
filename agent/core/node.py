"""What the node reports about itself: NodeInfo (static facts), NodeStats (load) and CoreInfo.

Key spellings and value styles follow Baetyl so its users' dashboards read them: Go architecture
names (`amd64`, `arm64`, `arm`), role `master`, CPU in cores as a decimal string (`"1.5"`), memory
and disk as plain byte counts (`"8243191808"`), `percent` as fractions (`"0.125"`), one
`disk_<mount>` entry per mounted file system and `netio` (decision 150). Everything here is cheap (a
few small file reads, psutil counters, one statvfs per mount) so it can run on every report; the
blocking parts run in a worker thread through the `collect_*` coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import shlex
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import psutil

from agent.contracts.report import (
    NETIO_KEYS,
    RESOURCE_KEY_MAX,
    RESOURCE_KEYS_MAX,
    CoreInfo,
    NetIOKey,
    NodeInfo,
    NodeStats,
    bytes_text,
    cores_text,
    fraction_text,
)
from agent.contracts.resources import quantity_value
from agent.contracts.version import VERSION

OS_RELEASE_FILES = (Path("/etc/os-release"), Path("/usr/lib/os-release"))
MACHINE_ID_FILE = Path("/etc/machine-id")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
PRODUCT_UUID_FILE = Path("/sys/class/dmi/id/product_uuid")
ROLE = "master"  # a native node is one host, and it is its own master (as in Baetyl)

# uname -m → GOARCH, because Baetyl (a Go program) reports runtime.GOARCH.
_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "aarch64_be": "arm64be",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips": "mips",
    "mips64": "mips64",
    "loongarch64": "loong64",
}
_MIN_CPU_WINDOW = 0.1  # seconds; a shorter sample says more about noise than about load
DISK_PREFIX: Final = "disk_"
"""`disk_<mount point>`: one file system's figures in `usage`, `capacity` and `percent`."""
MAX_MOUNTS: Final = RESOURCE_KEYS_MAX - 3  # beside cpu, memory and disk
KUBE_CONDITIONS: Final = {
    "DiskPressure": "disk_pressure",
    "MemoryPressure": "memory_pressure",
    "PIDPressure": "pid_pressure",
    "NetworkUnavailable": "network_unavailable",
}
"""Kubernetes Node conditions → the NodeStats flags Baetyl's kube mode sets from them."""


def go_arch(machine: str) -> str:
    """Go's name (GOARCH) for a `uname -m` machine string: x86_64 → amd64, armv7l → arm."""
    machine = machine.strip().lower()
    if machine in _GO_ARCH:
        return _GO_ARCH[machine]
    if machine.startswith("arm"):
        return "arm"
    return machine


_VARIANTS: Final = {"aarch64": "v8", "arm64": "v8", "armv8l": "v8", "armv7l": "v7", "armv6l": "v6"}


def go_variant(machine: str) -> str:
    """The ARM variant Baetyl reports beside `arch` (`v8`, `v7`, `v6`, as in `linux-arm-v7`);
    "" for other architectures, where Baetyl leaves it empty too."""
    return _VARIANTS.get(machine.strip().lower(), "")


def read_os_image(candidates: tuple[Path, ...] = OS_RELEASE_FILES) -> str:
    """PRETTY_NAME of os-release (`Debian GNU/Linux 12 (bookworm)`), or "" when unknown."""
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "PRETTY_NAME":
                with contextlib.suppress(ValueError):
                    words = shlex.split(value, comments=False)
                    return " ".join(words)
                return value.strip().strip("\"'")
        return ""
    return ""


def read_id_file(path: Path) -> str:
    """The trimmed first line of a one-line id file (machine-id, boot_id), or "" if absent."""
    try:
        return path.read_text(encoding="ascii", errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def read_host_id() -> str:
    """The host's id as Baetyl's native mode reports `systemUUID`: the firmware's product UUID
    (readable by root), else the machine id."""
    return read_id_file(PRODUCT_UUID_FILE).lower() or read_id_file(MACHINE_ID_FILE)


def primary_ipv4() -> str:
    """The source address of the default route, else the first non-loopback IPv4, else ""."""
    # A connected UDP socket sends nothing; the kernel only picks the route and source address.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed to anyone
        address = str(probe.getsockname()[0])
        if address and not address.startswith(("0.", "127.")):
            return address
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return str(entry.address)
    return ""


def read_info(*, role: str = ROLE, labels: dict[str, str] | None = None) -> NodeInfo:
    """The node's static facts, read now (blocking: a few small files and one socket)."""
    uname = platform.uname()
    return NodeInfo(
        hostname=socket.gethostname(),
        address=primary_ipv4(),
        arch=go_arch(uname.machine),
        variant=go_variant(uname.machine) or None,
        os=uname.system.lower(),
        kernel_ver=uname.release,
        os_image=read_os_image(),
        machine_id=read_id_file(MACHINE_ID_FILE),
        boot_id=read_id_file(BOOT_ID_FILE),
        system_uuid=read_host_id(),
        role=role,
        labels=dict(labels or {}),
    )


async def collect_info(*, role: str = ROLE, labels: dict[str, str] | None = None) -> NodeInfo:
    """`read_info` in a worker thread."""
    return await asyncio.to_thread(read_info, role=role, labels=labels)


def core_info(backend: str) -> CoreInfo:
    """The `core` report key: agent version, Python version, backend (native or kube)."""
    return CoreInfo(version=VERSION, python=platform.python_version(), backend=backend)


def _busy_and_total(times: Any) -> tuple[float, float]:
    """CPU seconds busy and in total, counted the way psutil's cpu_percent counts them."""
    fields = times._asdict()
    # guest time is already included in user time on Linux
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return total - idle, total


class StatsCollector:
    """Samples node load; CPU use and network rates are averaged over the time since this
    collector's last sample.

    Each user (the report loop, the local API) keeps its own collector so that one does not
    shorten the other's window; psutil's module-level `cpu_percent` would share one window.
    """

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._lock = threading.Lock()
        self._last = _busy_and_total(psutil.cpu_times())
        self._last_net = _net_counters()
        self._last_at = time.monotonic()

    def sample(self) -> NodeStats:
        """Usage, capacity and percent of CPU, memory, the store's disk and every mounted file
        system, and network rates (blocking, ≤ 0.1 s)."""
        cpu_fraction, netio = self._window()
        cores = psutil.cpu_count(logical=True) or 1
        memory = psutil.virtual_memory()
        memory_used = memory.total - memory.available
        usage = {"cpu": cores_text(cpu_fraction * cores), "memory": bytes_text(memory_used)}
        capacity = {"cpu": str(cores), "memory": bytes_text(memory.total)}
        percent = {
            "cpu": fraction_text(cpu_fraction, 1.0),
            "memory": fraction_text(memory_used, memory.total),
        }
        disks = {"disk": _existing_ancestor(self.disk_path)}
        disks.update((DISK_PREFIX + mount, Path(mount)) for mount in mount_points())
        for key, path in disks.items():
            figures = _disk_figures(path)
            if figures is None:
                continue
            used, size = figures
            usage[key], capacity[key] = bytes_text(used), bytes_text(size)
            percent[key] = fraction_text(used, size)
        return NodeStats(ready=True, usage=usage, capacity=capacity, percent=percent, netio=netio)

    async def collect(self) -> NodeStats:
        """`sample` in a worker thread."""
        return await asyncio.to_thread(self.sample)

    def _window(self) -> tuple[float, dict[NetIOKey, str]]:
        """The CPU fraction busy and the network rates since the last sample."""
        with self._lock:  # two threads sampling at once would each see half a window
            if time.monotonic() - self._last_at < _MIN_CPU_WINDOW:
                time.sleep(_MIN_CPU_WINDOW)
            busy, total = _busy_and_total(psutil.cpu_times())
            net = _net_counters()
            now = time.monotonic()
            (last_busy, last_total), last_net = self._last, self._last_net
            seconds = now - self._last_at
            self._last, self._last_net, self._last_at = (busy, total), net, now
        netio = {
            key: str(max(round((net[key] - last_net[key]) / seconds), 0))
            for key in NETIO_KEYS
            if key in net and key in last_net
        }
        if total <= last_total:
            return 0.0, netio
        return min(max((busy - last_busy) / (total - last_total), 0.0), 1.0), netio


async def collect_stats(collector: StatsCollector) -> NodeStats:
    """One NodeStats sample, taken in a worker thread."""
    return await collector.collect()


def mount_points() -> list[str]:
    """The mount points of the host's real file systems (psutil's `all=False`: no proc, sysfs,
    tmpfs, …), sorted, as many as fit in a report; Baetyl reports each as `disk_<mount>`."""
    try:
        partitions = psutil.disk_partitions(all=False)
    except OSError:
        return []
    mounts = sorted(
        {p.mountpoint for p in partitions if len(DISK_PREFIX + p.mountpoint) <= RESOURCE_KEY_MAX}
    )
    return mounts[:MAX_MOUNTS]


def with_capacity(
    stats: NodeStats,
    *,
    ready: bool,
    capacity: Mapping[str, str],
    conditions: Mapping[str, bool] | None = None,
) -> NodeStats:
    """`stats` with what the cluster says of the node: its readiness, its capacity (its
    allocatable share may be smaller than the host) with the percentages recomputed against it,
    and the pressure flags of its conditions. The `disk_<mount>` entries go: in its pod the
    agent sees the pod's mounts, not the node's. `netio` stays (the agent's pod uses the host's
    network)."""
    usage = {key: value for key, value in stats.usage.items() if not key.startswith(DISK_PREFIX)}
    figures = {key: quantity_value(capacity[key]) for key in usage if key in capacity}
    shown = {
        key: cores_text(value) if key == "cpu" else bytes_text(value)
        for key, value in figures.items()
    }
    percent = {key: fraction_text(quantity_value(usage[key]), figures[key]) for key in figures}
    flags = {
        field: value
        for condition, field in KUBE_CONDITIONS.items()
        if (value := (conditions or {}).get(condition)) is not None
    }
    return NodeStats.model_validate(
        {
            "ready": ready,
            **flags,
            "usage": usage,
            "capacity": shown,
            "percent": percent,
            "netio": stats.netio,
        }
    )


def report_entries(info: NodeInfo, stats: NodeStats, core: CoreInfo) -> dict[str, Any]:
    """The node's keys of the reported section: `node`, `nodestats` (by hostname) and `core`."""
    return {
        "node": {info.hostname: info.to_wire()},
        "nodestats": {info.hostname: stats.to_wire()},
        "core": core.to_wire(),
    }


def _disk_figures(path: Path) -> tuple[int, int] | None:
    """Bytes used and usable (used + free: what `df` shows, without the root reserve) of the
    file system holding `path`; None when it cannot be read (a mount gone, no permission)."""
    try:
        disk = psutil.disk_usage(str(path))
    except OSError:
        return None
    return disk.used, disk.used + disk.free


def _net_counters() -> dict[NetIOKey, int]:
    """Bytes and packets sent and received so far by every interface but loopback (an edge
    node's apps talk to each other over it; that is not network traffic)."""
    try:
        counters = psutil.net_io_counters(pernic=True)
        stats = psutil.net_if_stats()
    except OSError:
        return {}
    totals: dict[NetIOKey, int] = dict.fromkeys(NETIO_KEYS, 0)
    for nic, io in counters.items():
        flags = getattr(stats.get(nic), "flags", "")
        if nic == "lo" or "loopback" in flags.split(","):
            continue
        totals["netBytesSent"] += io.bytes_sent
        totals["netBytesRecv"] += io.bytes_recv
        totals["netPacketsSent"] += io.packets_sent
        totals["netPacketsRecv"] += io.packets_recv
    return totals


def _existing_ancestor(path: Path) -> Path:
    """`path` or its nearest existing parent: the store may not exist before the first save."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
