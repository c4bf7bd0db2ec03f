"""Pod CPU and memory from the metrics API (`metrics.k8s.io`), where the cluster serves it.

metrics-server (K3s ships it; a kubeadm cluster adds it) publishes each pod's containers'
usage; an instance reports the sum. Where no metrics API exists, usage stays "0": asking the
kubelet's own stats instead would need `nodes/proxy`, a right that reaches every pod's exec.
"""

from __future__ import annotations

from typing import Any

from agent.contracts.report import Usage, cpu_quantity, memory_quantity
from agent.contracts.resources import quantity_value

Manifest = dict[str, Any]
METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"


def pod_usage(item: Manifest) -> Usage:
    """A PodMetrics object as one Usage: its containers' CPU and memory summed."""
    containers = item.get("containers") or []
    cores = sum(quantity_value(str(c.get("usage", {}).get("cpu", "0"))) for c in containers)
    size = sum(quantity_value(str(c.get("usage", {}).get("memory", "0"))) for c in containers)
    return Usage(cpu=cpu_quantity(cores * 100), memory=memory_quantity(int(size)))
