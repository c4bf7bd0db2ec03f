"""What the node reports about itself: NodeInfo (static facts), NodeStats (load) and CoreInfo.

Key spellings and value styles follow Baetyl's native mode so its users recognise them: Go
architecture names (`amd64`, `arm64`, `arm`), role `master`, CPU as Kubernetes millicores
(`"1500m"`) and memory and disk as plain byte counts (`"8243191808"`, a valid quantity). Everything
here is cheap (a few small file reads and psutil counters) so it can run on every report; the
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
from pathlib import Path
from typing import Any

import psutil

from agent.contracts.report import CoreInfo, NodeInfo, NodeStats, ResourcePercent, Resources
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


def go_arch(machine: str) -> str:
    """Go's name (GOARCH) for a `uname -m` machine string: x86_64 → amd64, armv7l → arm."""
    machine = machine.strip().lower()
    if machine in _GO_ARCH:
        return _GO_ARCH[machine]
    if machine.startswith("arm"):
        return "arm"
    return machine


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
    """Samples node load; CPU use is averaged over the time since this collector's last sample.

    Each user (the report loop, the local API) keeps its own collector so that one does not
    shorten the other's CPU window; psutil's module-level `cpu_percent` would share one window.
    """

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._lock = threading.Lock()
        self._last = _busy_and_total(psutil.cpu_times())
        self._last_at = time.monotonic()

    def sample(self) -> NodeStats:
        """Usage, capacity and percent of CPU, memory and disk (blocking, ≤ 0.1 s)."""
        cpu_fraction = self._cpu_fraction()
        cores = psutil.cpu_count(logical=True) or 1
        memory = psutil.virtual_memory()
        memory_used = memory.total - memory.available
        disk = psutil.disk_usage(str(_existing_ancestor(self.disk_path)))
        disk_capacity = disk.used + disk.free  # space usable without root reserve, as df shows
        return NodeStats(
            ready=True,
            usage=Resources(
                cpu=f"{round(cpu_fraction * cores * 1000)}m",
                memory=str(memory_used),
                disk=str(disk.used),
            ),
            capacity=Resources(cpu=str(cores), memory=str(memory.total), disk=str(disk_capacity)),
            percent=ResourcePercent(
                cpu=_percent(cpu_fraction, 1.0),
                memory=_percent(memory_used, memory.total),
                disk=_percent(disk.used, disk_capacity),
            ),
        )

    async def collect(self) -> NodeStats:
        """`sample` in a worker thread."""
        return await asyncio.to_thread(self.sample)

    def _cpu_fraction(self) -> float:
        with self._lock:  # two threads sampling at once would each see half a window
            if time.monotonic() - self._last_at < _MIN_CPU_WINDOW:
                time.sleep(_MIN_CPU_WINDOW)
            busy, total = _busy_and_total(psutil.cpu_times())
            last_busy, last_total = self._last
            self._last, self._last_at = (busy, total), time.monotonic()
        if total <= last_total:
            return 0.0
        return min(max((busy - last_busy) / (total - last_total), 0.0), 1.0)


async def collect_stats(collector: StatsCollector) -> NodeStats:
    """One NodeStats sample, taken in a worker thread."""
    return await collector.collect()


def with_capacity(stats: NodeStats, *, ready: bool, capacity: Resources) -> NodeStats:
    """`stats` with the readiness and capacity the cluster gives the node (its allocatable
    share may be smaller than the host), the percentages recomputed against that capacity."""
    return NodeStats(
        ready=ready,
        usage=stats.usage,
        capacity=capacity,
        percent=ResourcePercent(
            cpu=_percent(quantity_value(stats.usage.cpu), quantity_value(capacity.cpu)),
            memory=_percent(quantity_value(stats.usage.memory), quantity_value(capacity.memory)),
            disk=_percent(quantity_value(stats.usage.disk), quantity_value(capacity.disk)),
        ),
    )


def report_entries(info: NodeInfo, stats: NodeStats, core: CoreInfo) -> dict[str, Any]:
    """The node's keys of the reported section: `node`, `nodestats` (by hostname) and `core`."""
    return {
        "node": {info.hostname: info.to_wire()},
        "nodestats": {info.hostname: stats.to_wire()},
        "core": core.to_wire(),
    }


def _percent(part: float, whole: float) -> float:
    if whole <= 0:
        return 0.0
    return round(min(max(part / whole * 100, 0.0), 100.0), 2)


def _existing_ancestor(path: Path) -> Path:
    """`path` or its nearest existing parent: the store may not exist before the first save."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
