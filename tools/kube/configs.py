"""Each component's command line and configuration files, from the layout and the chosen ports.

Pure except `write_all`, which writes the files. The flags follow the checked recipe in
docs/kubernetes.md: everything on loopback but the kubelet, which must advertise a non-loopback
node IP (it refuses 127.0.0.1) and serves on it for `logs` and `exec`.
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

import yaml

from agent.contracts.kit import files
from tools.kube import pki
from tools.kube.layout import (
    BIN,
    BRIDGE,
    NODE_NAME,
    POD_SUBNET,
    SERVICE_RANGE,
    ClusterLayout,
    ClusterState,
)

PAUSE_IMAGE = "localhost/baetyl-py/pause:1"
CNI_BIN = Path("/usr/lib/cni")
PORT_NAMES = (
    "etcd-client",
    "etcd-peer",
    "etcd-metrics",
    "apiserver",
    "kubelet",
    "kubelet-healthz",
    "kube-proxy-healthz",
    "kube-proxy-metrics",
)


def kubeconfig(layout: ClusterLayout, state: ClusterState, client: str) -> dict[str, Any]:
    """A kubeconfig for the CLIENTS entry `client`, with absolute paths to its files."""
    pair = pki.client(layout, client)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "baetyl-kube",
                "cluster": {
                    "server": f"https://127.0.0.1:{state.ports['apiserver']}",
                    "certificate-authority": str(pki.ca_file(layout)),
                },
            }
        ],
        "users": [
            {
                "name": client,
                "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
            }
        ],
        "contexts": [
            {"name": "baetyl-kube", "context": {"cluster": "baetyl-kube", "user": client}}
        ],
        "current-context": "baetyl-kube",
    }


def kubeconfig_path(layout: ClusterLayout, client: str) -> Path:
    """Where the kubeconfig of `client` is written (the admin's is the layout's `kubeconfig`)."""
    return layout.kubeconfig if client == "admin" else layout.config / f"{client}.kubeconfig"


def containerd_toml(layout: ClusterLayout) -> str:
    """containerd's config: private root, state and socket; the CRI plugin's required settings.

    `restrict_oom_score_adj`: root here may not lower oom_score_adj, and without it every pod
    sandbox fails to start ("can't get final child's PID from pipe").
    """
    root = layout.containerd_root
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{layout.cni_conf}"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
"""


def cni_conflist() -> dict[str, Any]:
    """A bridge network for pods that are not hostNetwork; the kubelet wants one either way.

    No IP masquerade: pods never reach outside this machine, and no NAT chain is left to remove.
    """
    return {
        "cniVersion": "0.4.0",
        "name": "baetyl-kube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: ClusterLayout, state: ClusterState) -> dict[str, Any]:
    """The KubeletConfiguration: authenticated API, cgroupfs, no image GC or eviction surprises.

    Images are imported, never pulled: garbage collecting an unused one would lose it for good, so
    image GC is off; the eviction thresholds are low so a full disk of other tenants' data does
    not evict the test pods.
    """
    serving = pki.serving(layout, "kubelet-serving")
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": state.node_ip,
        "port": state.ports["kubelet"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": state.ports["kubelet-healthz"],
        "readOnlyPort": 0,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca_file(layout))},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusReportFrequency": "10s",
    }


def kube_proxy_config(layout: ClusterLayout, state: ClusterState) -> dict[str, Any]:
    """The KubeProxyConfiguration: iptables mode, NodePorts on loopback only, no sysctl tuning.

    `masqueradeAll` lets a pod reach a Service whose endpoint sits on the same bridge without
    `br_netfilter` (the reply comes back through the host, where the NAT is undone); NodePorts
    answer on 127.0.0.0/8 only, so nothing the tests start is reachable from the network.
    Conntrack limits and timeouts are left as the host has them (0 = do not touch).
    """
    ports = state.ports
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path(layout, "kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports['kube-proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['kube-proxy-metrics']}",
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "nodePortAddresses": ["127.0.0.0/8"],
        "iptables": {"masqueradeAll": True, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def argv(component: str, layout: ClusterLayout, state: ClusterState) -> list[str]:
    """The command line of `component`."""
    ports = state.ports
    etcd_url = f"http://127.0.0.1:{ports['etcd-client']}"
    if component == "containerd":
        return [_which("containerd"), "--config", str(layout.config / "containerd.toml")]
    if component == "etcd":
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        return [
            _which("etcd"),
            "--name=baetyl-kube",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=baetyl-kube={peer}",
            f"--listen-metrics-urls=http://127.0.0.1:{ports['etcd-metrics']}",
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        serving = pki.serving(layout, "apiserver")
        kubelet_client = pki.client(layout, "apiserver-kubelet-client")
        keys = pki.service_account_keys(layout)
        return [
            str(BIN / component),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            "--insecure-port=0",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={pki.ca_file(layout)}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={keys.cert}",
            f"--service-account-signing-key-file={keys.key}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--enable-priority-and-fairness=false",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--cert-dir={layout.root / 'apiserver'}",
        ]
    if component == "kube-controller-manager":
        return [
            str(BIN / component),
            f"--kubeconfig={kubeconfig_path(layout, 'controller-manager')}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki.service_account_keys(layout).key}",
            f"--root-ca-file={pki.ca_file(layout)}",
            "--use-service-account-credentials=true",
            "--bind-address=127.0.0.1",
            "--port=0",
            "--secure-port=0",
        ]
    if component == "kube-scheduler":
        return [
            str(BIN / component),
            f"--kubeconfig={kubeconfig_path(layout, 'scheduler')}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--port=0",
            "--secure-port=0",
        ]
    if component == "kubelet":
        return [
            str(BIN / component),
            f"--config={layout.config / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig_path(layout, 'kubelet')}",
            "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{layout.containerd_socket}",
            f"--root-dir={layout.kubelet_root}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={state.node_ip}",
            f"--cert-dir={layout.root / 'kubelet-pki'}",
            "--v=1",
        ]
    if component == "kube-proxy":
        return [str(BIN / component), f"--config={layout.config / 'kube-proxy.yaml'}"]
    raise ValueError(f"unknown component {component!r}")


def write_all(layout: ClusterLayout, state: ClusterState) -> None:
    """Write every configuration file and kubeconfig of the cluster."""
    layout.config.mkdir(parents=True, exist_ok=True)
    layout.cni_conf.mkdir(parents=True, exist_ok=True)
    for client in pki.CLIENTS:
        if client == "apiserver-kubelet-client":
            continue
        files.atomic_write(
            kubeconfig_path(layout, client),
            yaml.safe_dump(kubeconfig(layout, state, client)).encode(),
        )
    files.atomic_write(
        layout.config / "containerd.toml", containerd_toml(layout).encode(), mode=0o644
    )
    files.atomic_write(
        layout.cni_conf / "10-baetyl-kube.conflist",
        json.dumps(cni_conflist(), indent=2).encode(),
        mode=0o644,
    )
    files.atomic_write(
        layout.config / "kubelet.yaml",
        yaml.safe_dump(kubelet_config(layout, state)).encode(),
        mode=0o644,
    )
    files.atomic_write(
        layout.config / "kube-proxy.yaml",
        yaml.safe_dump(kube_proxy_config(layout, state)).encode(),
        mode=0o644,
    )


def image_architecture() -> str:
    """This machine's architecture as image configs name it."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _which(program: str) -> str:
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise FileNotFoundError(
            f"{program} is not installed (tools/system-deps.sh kube installs it)"
        )
    return found
