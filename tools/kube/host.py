"""What the cluster does to the host outside its directory, and how `down` undoes it.

The kubelet and containerd write outside any directory we give them: pod cgroups (`kubepods`),
mounts below the kubelet's root and `/run/containerd`, network namespaces in `/run/netns`, the
pod bridge, the portmap plugin's and kube-proxy's iptables chains, `ip_forward` and
`route_localnet`, and pod logs in `/var/log`; `up`
adds one NAT rule of its own (`API_CHAIN`).
Each function here removes one of those; all are safe to run when there is nothing to remove.
Blocking calls: run them in a thread from asyncio code.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from tools.kube.layout import BRIDGE

CGROUP_ROOT = Path("/sys/fs/cgroup")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
ROUTE_LOCALNET = Path("/proc/sys/net/ipv4/conf/all/route_localnet")
CHAIN_PREFIXES = ("CNI-", "KUBE-")
"""The portmap plugin's chains, and kube-proxy's and the kubelet's (its canary chains)."""
API_CHAIN = "BPYKUBE-API"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a system tool (found on the system path, so a root without /sbin on PATH works) to
    its end, output captured; never raises for an exit status: cleanup goes on regardless."""
    program = shutil.which(argv[0], path=SYSTEM_PATH)
    if program is None:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]} not found")
    return subprocess.run(  # noqa: S603 - our own arguments, no shell
        [program, *argv[1:]], capture_output=True, text=True, check=False
    )


def node_ip() -> str:
    """This machine's first non-loopback IPv4 address: the kubelet refuses a loopback node IP.

    Nothing is routed through it; it only names the node (and its kubelet's serving address).
    """
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        if name == "lo":
            continue
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    raise RuntimeError("no non-loopback IPv4 address on this machine: the kubelet needs one")


def read_ip_forward() -> str:
    """The current `net.ipv4.ip_forward` ("0" or "1")."""
    return IP_FORWARD.read_text(encoding="ascii").strip()


def restore_ip_forward(value: str) -> None:
    """Put `ip_forward` back (the bridge plugin sets it to 1)."""
    with contextlib.suppress(OSError):
        if read_ip_forward() != value:
            IP_FORWARD.write_text(f"{value}\n", encoding="ascii")


def pod_processes() -> list[psutil.Process]:
    """Every process in a pod cgroup (`kubepods`), whichever kubelet put it there."""
    found = []
    for process in psutil.process_iter():
        try:
            cgroups = Path(f"/proc/{process.pid}/cgroup").read_text(encoding="utf-8")
        except OSError:
            continue
        if "/kubepods" in cgroups:
            found.append(process)
    return found


def kill_all(processes: Iterable[psutil.Process], *, timeout: float = 10.0) -> None:
    """SIGKILL `processes` and wait until they are gone."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=timeout)


def shims(socket_path: Path) -> list[psutil.Process]:
    """The containerd shims serving the containerd at `socket_path`."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            command = process.cmdline()
            if (
                command
                and "containerd-shim" in Path(command[0]).name
                and str(socket_path) in command
            ):
                found.append(process)
    return found


def mounts_below(roots: Iterable[Path]) -> list[str]:
    """Mount points at or below any of `roots`, deepest first (the order to unmount them)."""
    prefixes = [str(root.resolve()) for root in roots]
    points = []
    with Path("/proc/self/mounts").open(encoding="utf-8") as table:
        for line in table:
            point = line.split()[1].replace("\\040", " ")
            if any(point == prefix or point.startswith(f"{prefix}/") for prefix in prefixes):
                points.append(point)
    return sorted(set(points), key=lambda point: point.count("/"), reverse=True)


def unmount_below(roots: Iterable[Path]) -> list[str]:
    """Unmount everything below `roots` (lazily, so a busy mount never blocks `down`); what was
    left mounted."""
    roots = list(roots)
    for point in mounts_below(roots):
        command("umount", "-l", point)
    return mounts_below(roots)


def remove_netns(prefix: str = "cni-") -> None:
    """Delete the pod network namespaces containerd made (`/run/netns/cni-…`)."""
    directory = Path("/run/netns")
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(prefix):
            command("ip", "netns", "delete", entry.name)
            with contextlib.suppress(OSError):
                command("umount", "-l", str(entry))
                entry.unlink()


def remove_bridge() -> None:
    """Delete the pod bridge (its veths went with the pods' namespaces)."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        command("ip", "link", "delete", BRIDGE)


def read_route_localnet() -> str:
    """The current `net.ipv4.conf.all.route_localnet` ("0" or "1")."""
    return ROUTE_LOCALNET.read_text(encoding="ascii").strip()


def restore_route_localnet(value: str) -> None:
    """Put `route_localnet` back (kube-proxy sets it to 1 for NodePorts on 127.0.0.1)."""
    with contextlib.suppress(OSError):
        if read_route_localnet() != value:
            ROUTE_LOCALNET.write_text(f"{value}\n", encoding="ascii")


def remove_proxy_rules(kube_proxy: Path) -> None:
    """kube-proxy's own cleanup of the rules it made (`--cleanup`; a no-op when there are none)."""
    if kube_proxy.exists():
        subprocess.run(  # noqa: S603 - our own binary and argument
            [str(kube_proxy), "--cleanup"], capture_output=True, check=False, timeout=60
        )


def remove_chains() -> None:
    """Remove the iptables chains named with CHAIN_PREFIXES and every rule jumping to them."""
    for table in ("nat", "filter", "mangle"):
        dump = command("iptables-save", "-t", table).stdout
        chains = [
            line[1:].split()[0]
            for line in dump.splitlines()
            if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
        ]
        for line in dump.splitlines():
            if line.startswith("-A ") and any(f"-j {p}" in line for p in CHAIN_PREFIXES):
                rule = line.split()[1:]
                if rule[0] not in chains:
                    command("iptables", "-t", table, "-D", *rule)
        for chain in chains:
            command("iptables", "-t", table, "-F", chain)
        for chain in chains:
            command("iptables", "-t", table, "-X", chain)


def route_service_to_api(service_ip: str, port: int) -> None:
    """Send what this host (and its host-network pods) opens to the `kubernetes` Service address
    (`service_ip:443`) to the API server on 127.0.0.1:`port`.

    There is no kube-proxy, and the API server, listening on loopback only, cannot publish the
    Service's endpoint (Kubernetes refuses loopback endpoints). This one DNAT rule in the `nat`
    table's OUTPUT chain is what a pod's in-cluster configuration needs to reach it.
    """
    remove_api_route()
    command("iptables", "-t", "nat", "-N", API_CHAIN)
    command(
        "iptables", "-t", "nat", "-A", API_CHAIN, "-d", f"{service_ip}/32", "-p", "tcp",
        "--dport", "443", "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}",
    )  # fmt: skip
    command("iptables", "-t", "nat", "-I", "OUTPUT", "-j", API_CHAIN)


def remove_api_route() -> None:
    """Remove `route_service_to_api`'s chain and the jumps to it."""
    for _ in range(16):  # one jump per `up`; a bound in case iptables misbehaves
        if command("iptables", "-t", "nat", "-D", "OUTPUT", "-j", API_CHAIN).returncode != 0:
            break
    command("iptables", "-t", "nat", "-F", API_CHAIN)
    command("iptables", "-t", "nat", "-X", API_CHAIN)


def remove_pod_cgroups(name: str = "kubepods") -> list[Path]:
    """Remove the `kubepods` cgroup trees in every hierarchy (deepest first); what is left."""
    left: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return left
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for directory in sorted(
            (path for path in top.rglob("*") if path.is_dir()),
            key=lambda path: len(path.parts),
            reverse=True,
        ):
            _rmdir_cgroup(directory)
        _rmdir_cgroup(top)
        if top.exists():
            left.append(top)
    return left


def _rmdir_cgroup(directory: Path) -> None:
    # A cgroup whose last process just died may refuse removal for a moment.
    for _ in range(20):
        try:
            directory.rmdir()
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
        else:
            return


def remove_tree(path: Path) -> None:
    """Remove a directory tree if it exists (after its mounts are gone)."""
    if path.is_dir() and not mounts_below([path]):
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() and not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
