"""`make kube-up` / `make kube-down`: a local Kubernetes control plane and one real node.

    python -m tools.kube.cluster up   [--dir DIR]   start what is not running; print the kubeconfig
    python -m tools.kube.cluster down [--dir DIR] [--purge]
    python -m tools.kube.cluster status [--dir DIR]

etcd, kube-apiserver, kube-controller-manager and kube-scheduler listen on 127.0.0.1; the kubelet
runs real runc containers through containerd. The components run detached: `up` returns once the
node is Ready, and `down` stops them and removes what they left on the host (mounts, pod cgroups,
network namespaces, the pod bridge, iptables chains). One cluster runs on a machine at a time:
containerd's shims keep state in /run/containerd whatever their configuration says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make `tools.kube` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
import psutil

from tools.kit import procs
from tools.kit.progress import Progress
from tools.kit.waiting import Died, WaitTimeout, eventually
from tools.kube import configs, host, images, pki
from tools.kube.layout import (
    BIN,
    CACHE,
    COMPONENTS,
    HOST_POD_LOGS,
    NODE_NAME,
    RUNTIME_STATE,
    SERVICE_IP,
    ClusterLayout,
    ClusterState,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / "var/kube"
ACTIVE = CACHE / "active"  # the directory of the cluster that runs on this machine
PORT_BASE = 26440  # above the test workers' port blocks, below the ephemeral range
LIMITS = {"containerd": 20.0, "etcd": 30.0, "kube-apiserver": 90.0, "node": 120.0}
STOP_GRACE = 10.0
KUBE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
SYSTEM_PROGRAMS = (
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "etcd",
    "ip",
    "iptables",
    "iptables-restore",
)


class ClusterError(procs.KitError):
    """The cluster cannot start or stop; the message says what to look at."""


def missing_parts() -> list[str]:
    """What this machine lacks to run the cluster (binaries not built, packages not installed)."""
    missing = [
        f"{BIN / name} (make kube-build)" for name in KUBE_BINARIES if not (BIN / name).exists()
    ]
    missing += [
        f"{program} (tools/system-deps.sh kube)"
        for program in SYSTEM_PROGRAMS
        if shutil.which(program, path=host.SYSTEM_PATH) is None
    ]
    if not (configs.CNI_BIN / "bridge").exists():
        missing.append(f"{configs.CNI_BIN}/bridge (tools/system-deps.sh kube)")
    if not images.BUSYBOX.exists():
        missing.append(f"{images.BUSYBOX} (tools/system-deps.sh kube)")
    return missing


def running(layout: ClusterLayout) -> dict[str, psutil.Process | None]:
    """Each component's live process, or None."""
    return {
        name: procs.process_from(layout.pid_file(name), program=name, marker=_marker(name, layout))
        for name in COMPONENTS
    }


def _marker(component: str, layout: ClusterLayout) -> str:
    """An argument only our instance of `component` has on its command line."""
    state = layout.load()
    if state is None:
        return "\0never"
    return configs.argv(component, layout, state)[-1 if component != "containerd" else 2]


def _ports(base: int) -> dict[str, int]:
    ports = {}
    for offset, name in enumerate(configs.PORT_NAMES):
        port = base + offset
        used = procs.port_in_use(port)
        # The kubelet listens on the node's address, not on loopback where this checks.
        if used is not None and name != "kubelet":
            raise ClusterError(f"port {port} for {name} is {used}; give another --port-base")
        ports[name] = port
    return ports


class Cluster:
    """The cluster in one directory: start, wait, stop, clean."""

    def __init__(self, layout: ClusterLayout, progress: Progress) -> None:
        self.layout = layout
        self.progress = progress

    async def up(self, port_base: int) -> ClusterState:
        """Start every component that does not run; return once the node is Ready."""
        missing = missing_parts()
        if missing:
            raise ClusterError("cannot start the local cluster; missing: " + ", ".join(missing))
        self._claim()
        layout = self.layout
        alive = running(layout)
        state = layout.load()
        if state is None or not any(alive.values()):
            state = await asyncio.to_thread(self._prepare, port_base, state)
        for directory in (layout.logs, layout.run):
            directory.mkdir(parents=True, exist_ok=True)
        async with aiohttp.ClientSession() as session:
            api = ApiProbe(session, layout, state)
            for component in COMPONENTS:
                if alive[component] is not None:
                    continue
                with self.progress.step(f"starting {component}"):
                    pid = procs.spawn_detached(
                        configs.argv(component, layout, state),
                        log=layout.log_file(component),
                        pid_file=layout.pid_file(component),
                    )
                    await self._ready(component, pid, api)
            with self.progress.step(f"waiting for node {NODE_NAME} to be Ready"):
                await eventually(
                    api.node_ready,
                    limit=LIMITS["node"],
                    what=f"node {NODE_NAME} Ready",
                    poll=0.5,
                    detail=lambda: procs.tail(layout.log_file("kubelet"), 10, indent="    "),
                )
        return state

    def _claim(self) -> None:
        """Refuse when another directory's cluster runs on this machine."""
        try:
            other = Path(ACTIVE.read_text(encoding="utf-8").strip())
        except OSError:
            other = None
        if other is not None and other != self.layout.root:
            other_layout = ClusterLayout(other)
            if other_layout.state_file.exists() and any(running(other_layout).values()):
                raise ClusterError(
                    f"a local cluster already runs from {other}; stop it first: "
                    f"python -m tools.kube.cluster down --dir {other}"
                )
        ACTIVE.parent.mkdir(parents=True, exist_ok=True)
        ACTIVE.write_text(f"{self.layout.root}\n", encoding="utf-8")

    def _prepare(self, port_base: int, old: ClusterState | None) -> ClusterState:
        """Ports, PKI, configuration files and imported images for a cluster that is down."""
        layout = self.layout
        ip = host.node_ip()
        state = ClusterState(
            node_ip=ip,
            ports=_ports(port_base),
            ip_forward_before=old.ip_forward_before if old else host.read_ip_forward(),
            route_localnet_before=(
                old.route_localnet_before if old else host.read_route_localnet()
            ),
            created_host_dirs=old.created_host_dirs if old else [],
        )
        for directory in (*HOST_POD_LOGS, RUNTIME_STATE):
            if not directory.exists() and str(directory) not in state.created_host_dirs:
                state.created_host_dirs.append(str(directory))
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.save(state)
        with self.progress.step("certificates and configuration"):
            pki.make_all(layout, ip)
            configs.write_all(layout, state)
        return state

    async def _ready(self, component: str, pid: int, api: ApiProbe) -> None:
        layout = self.layout

        def alive() -> bool:
            return procs.alive(pid)

        def log() -> str:
            return procs.tail(layout.log_file(component), 15, indent="    ")

        checks: dict[str, tuple[Callable[[], Any], str]] = {
            "containerd": (layout.containerd_socket.exists, "containerd's socket"),
            "etcd": (api.etcd_healthy, "etcd healthy"),
            "kube-apiserver": (api.apiserver_ready, "the API server's /readyz"),
        }
        check, what = checks.get(component, (alive, f"{component} alive"))
        try:
            await eventually(
                check,
                limit=LIMITS.get(component, 5.0),
                what=what,
                alive=alive,
                detail=log,
                poll=0.2,
            )
        except (WaitTimeout, Died) as exc:
            raise ClusterError(f"{component}: {exc}\n{log()}") from None
        if component == "containerd":
            await self._import_images()
        if component == "kube-apiserver":
            state = self.layout.load()
            assert state is not None
            await asyncio.to_thread(host.route_service_to_api, SERVICE_IP, state.ports["apiserver"])

    async def _import_images(self) -> None:
        archives = await asyncio.to_thread(images.build_all, self.layout.images)
        for archive in archives:
            await import_archive(self.layout, archive)
            self.progress.detail(f"imported {archive.name}")

    def stop_component(self, component: str) -> bool:
        """Stop one control-plane component (an outage, for tests); `up` starts it again.
        False when it was not running. Blocking."""
        process = running(self.layout).get(component)
        if process is None:
            return False
        procs.stop_groups([process], timeout=STOP_GRACE)
        self.layout.pid_file(component).unlink(missing_ok=True)
        return True

    def down(self, *, purge: bool) -> list[str]:
        """Stop every component and remove what the cluster left on the host; what could not be
        removed (empty when all is clean). Blocking: run in a thread from asyncio code."""
        layout = self.layout
        state = layout.load()
        alive = running(layout)
        # The kubelet first, so it restarts nothing; it keeps no state worth a graceful stop.
        kubelet = alive.pop("kubelet")
        if kubelet is not None:
            host.kill_all([kubelet])
        host.kill_all(host.pod_processes())
        host.kill_all(host.shims(layout.containerd_socket))
        procs.stop_groups([p for p in alive.values() if p is not None], timeout=STOP_GRACE)
        problems = [
            f"still mounted: {point}" for point in host.unmount_below([layout.root, RUNTIME_STATE])
        ]
        host.remove_netns()
        host.remove_bridge()
        host.remove_proxy_rules(BIN / "kube-proxy")
        host.remove_chains()
        host.remove_api_route()
        problems += [f"cgroup left: {path}" for path in host.remove_pod_cgroups()]
        if state is not None:
            host.restore_ip_forward(state.ip_forward_before)
            host.restore_route_localnet(state.route_localnet_before)
            for directory in state.created_host_dirs:
                host.remove_tree(Path(directory))
        for component in COMPONENTS:
            layout.pid_file(component).unlink(missing_ok=True)
        if purge:
            host.remove_tree(layout.root)
        with contextlib.suppress(OSError):
            if ACTIVE.read_text(encoding="utf-8").strip() == str(layout.root):
                ACTIVE.unlink()
        return problems


async def import_archive(layout: ClusterLayout, archive: Path) -> None:
    """Import a docker-archive into the cluster's containerd (where the kubelet looks)."""
    process = await asyncio.create_subprocess_exec(
        "ctr",
        "--address",
        str(layout.containerd_socket),
        "--namespace",
        "k8s.io",
        "images",
        "import",
        "--no-unpack=false",
        str(archive),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise ClusterError(f"ctr images import {archive.name}: {output.decode(errors='replace')}")


class ApiProbe:
    """Health checks of etcd and the API server, and the node's readiness, as the admin."""

    def __init__(
        self, session: aiohttp.ClientSession, layout: ClusterLayout, state: ClusterState
    ) -> None:
        self.session = session
        self.state = state
        self.url = f"https://127.0.0.1:{state.ports['apiserver']}"
        admin = pki.client(layout, "admin")
        self.tls = ssl.create_default_context(cafile=str(pki.ca_file(layout)))
        self.tls.load_cert_chain(admin.cert, admin.key)

    async def etcd_healthy(self) -> bool:
        return (
            await self._get(f"http://127.0.0.1:{self.state.ports['etcd-client']}/health")
            is not None
        )

    async def apiserver_ready(self) -> bool:
        return await self._get(f"{self.url}/readyz", tls=True) is not None

    async def node_ready(self) -> bool:
        node = await self._get(f"{self.url}/api/v1/nodes/{NODE_NAME}", tls=True)
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    async def _get(self, url: str, *, tls: bool = False) -> Any:
        try:
            async with self.session.get(
                url, ssl=self.tls if tls else True, timeout=aiohttp.ClientTimeout(total=5)
            ) as answer:
                if answer.status != 200:
                    return None
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"text": text}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.kube.cluster",
        description=(
            "A local Kubernetes (control plane on 127.0.0.1, one kubelet with containerd) for "
            "the tests and `make demo MODE=kube`. Binaries: `make kube-build`."
        ),
    )
    parser.add_argument("command", choices=("up", "down", "status"), help="what to do")
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"the cluster's directory ({DEFAULT_DIR})"
    )
    parser.add_argument(
        "--port-base", type=int, default=PORT_BASE, help=f"first of 6 ports ({PORT_BASE})"
    )
    parser.add_argument(
        "--purge", action="store_true", help="down: also remove the directory (data, PKI, logs)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 with a message on failure."""
    options = build_parser().parse_args(argv)
    progress = Progress("kube")
    cluster = Cluster(ClusterLayout(options.dir.resolve()), progress)
    try:
        if options.command == "up":
            started = time.monotonic()
            asyncio.run(cluster.up(options.port_base))
            elapsed = time.monotonic() - started
            progress.say(f"cluster up in {elapsed:.1f} s; kubeconfig: {cluster.layout.kubeconfig}")
            progress.say(
                f"try: {BIN / 'kubectl'} --kubeconfig {cluster.layout.kubeconfig} get nodes"
            )
        elif options.command == "down":
            with progress.step("stopping the cluster and cleaning the host"):
                problems = cluster.down(purge=options.purge)
            for problem in problems:
                progress.say(problem)
            return 1 if problems else 0
        else:
            for name, process in running(cluster.layout).items():
                progress.say(
                    f"{name}: {'running, pid ' + str(process.pid) if process else 'stopped'}"
                )
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        progress.say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
