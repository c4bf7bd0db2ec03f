"""What `make demo MODE=kube` adds to the demo (tools/demo.py): the local Kubernetes of tools/kube
in `<demo dir>/kube/` (kubeconfig `var/demo/kube/kubeconfig`), a node whose agent runs the kube
backend against it, and examples/hello-kube, a container that answers on 127.0.0.1 as the native
app does. The agent itself runs on this machine, installed by the same install command; only its
core.yml (a base given to the install: `engine.backend: kube`) and the `kube` extra differ.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from tools.kit.progress import Progress
from tools.kube.cluster import PORT_BASE, Cluster, ClusterError, missing_parts, running
from tools.kube.layout import NODE_NAME, ClusterLayout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/hello-kube"
KUBECTL = Path.home() / ".cache/baetyl-py/kube/bin/kubectl"


def cluster_dir(var: Path) -> Path:
    """Where the demo's cluster lives."""
    return var / "kube"


async def ensure_cluster(var: Path, progress: Progress) -> Path:
    """Start the demo's cluster unless it runs; its kubeconfig."""
    layout = ClusterLayout(cluster_dir(var))
    if missing := await asyncio.to_thread(missing_parts):
        raise ClusterError(
            "MODE=kube needs the local Kubernetes, and this machine lacks: "
            + "; ".join(missing)
            + " (`make demo MODE=kube` builds and installs them; see docs/kubernetes.md)"
        )
    if all(await asyncio.to_thread(lambda: list(running(layout).values()))):
        progress.say(f"the local Kubernetes already runs ({layout.root})")
        return layout.kubeconfig
    await Cluster(layout, progress).up(port_base=PORT_BASE)
    return layout.kubeconfig


def stop_cluster(var: Path) -> list[str]:
    """Stop the demo's cluster and clean the host; its data stays for the next `up` (blocking)."""
    layout = ClusterLayout(cluster_dir(var))
    if layout.load() is None:
        return []
    return Cluster(layout, Progress("kube")).down(purge=False)


def cluster_runs(var: Path) -> bool:
    """Whether any part of the demo's cluster runs (blocking)."""
    return any(running(ClusterLayout(cluster_dir(var))).values())


def write_base_config(var: Path, kubeconfig: Path) -> Path:
    """The core.yml base the install command starts from: the kube backend on this cluster."""
    base = var / "kube-core.yml"
    settings = {
        "engine": {"backend": "kube"},
        "kube": {"kubeconfig": str(kubeconfig), "node_name": NODE_NAME},
    }
    base.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return base


def kubectl(var: Path) -> str:
    """The kubectl command line for the demo's cluster."""
    return f"{KUBECTL} --kubeconfig {cluster_dir(var) / 'kubeconfig'}"
