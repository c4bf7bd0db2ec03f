"""Where a local cluster keeps its files, and what `up` records for `down` and for its users.

One directory holds everything the cluster writes that can live in a directory of ours:
certificates, configs, etcd's data, containerd's root, the kubelet's root, logs and pid files.
`state.json` records the ports, the node and what `up` changed on the host (the ip_forward value,
the directories it created outside its own), so `down` can put the host back even after a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.contracts.kit import files

CACHE = Path(os.environ.get("BAETYL_CACHE", Path.home() / ".cache/baetyl-py")) / "kube"
BIN = CACHE / "bin"
NODE_NAME = "baetyl-kube-node"
BRIDGE = "bpykube0"
POD_SUBNET = "10.244.0.0/24"
SERVICE_RANGE = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_RANGE: the `kubernetes` Service
COMPONENTS = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
# Written by the runtime outside our directory (test-infrastructure recipe); `down` removes what
# our pods left there.
HOST_POD_LOGS = (Path("/var/log/pods"), Path("/var/log/containers"))
RUNTIME_STATE = Path("/run/containerd")


@dataclass
class ClusterState:
    """What `up` chose and changed; saved as `state.json` in the cluster directory."""

    node_ip: str
    ports: dict[str, int]
    ip_forward_before: str = "0"
    route_localnet_before: str = "0"
    created_host_dirs: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        """The saved form."""
        return json.dumps(asdict(self), indent=2).encode()


@dataclass(frozen=True)
class ClusterLayout:
    """The files of the cluster in `root`; nothing here touches the disk but `save`/`load`."""

    root: Path

    @property
    def pki(self) -> Path:
        """Certificates and keys (0600 keys)."""
        return self.root / "pki"

    @property
    def config(self) -> Path:
        """Configuration files of each component and the kubeconfigs."""
        return self.root / "config"

    @property
    def kubeconfig(self) -> Path:
        """The cluster admin's kubeconfig (`system:masters`): what users and tests load."""
        return self.root / "kubeconfig"

    @property
    def logs(self) -> Path:
        """One log file a component."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files."""
        return self.root / "run"

    @property
    def etcd_data(self) -> Path:
        """etcd's data directory."""
        return self.root / "etcd"

    @property
    def containerd_root(self) -> Path:
        """containerd's root (images, snapshots) and its socket directory."""
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket, private to this cluster."""
        return self.containerd_root / "containerd.sock"

    @property
    def cni_conf(self) -> Path:
        """The CNI configuration directory containerd reads."""
        return self.root / "cni"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's root directory (pod volumes are mounted below it)."""
        return self.root / "kubelet"

    @property
    def images(self) -> Path:
        """The image archives built for import."""
        return self.root / "images"

    @property
    def state_file(self) -> Path:
        """`state.json`."""
        return self.root / "state.json"

    def pid_file(self, component: str) -> Path:
        """The pid file of `component`."""
        return self.run / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        """The log of `component`."""
        return self.logs / f"{component}.log"

    def save(self, state: ClusterState) -> None:
        """Write `state.json` atomically."""
        files.atomic_write(self.state_file, state.to_json(), mode=0o644)

    def load(self) -> ClusterState | None:
        """The saved state, or None when there is none (never started, or fully removed)."""
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return ClusterState(**raw)
