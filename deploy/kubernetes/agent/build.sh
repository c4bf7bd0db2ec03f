#!/usr/bin/env bash
# Builds the agent's container image offline from the wheel, without Docker or a registry:
# this machine's python3 and the wheel with its `kube` extra, written as a docker-archive
# (tools/kube/agent_image.py). Load it on a node with `ctr -n k8s.io images import FILE`
# (containerd, K3s: `k3s ctr images import FILE`) or `docker load -i FILE`.
#
#   deploy/kubernetes/agent/build.sh [OUT.tar]      default: dist/baetyl-py-agent.tar
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="${1:-$root/dist/baetyl-py-agent.tar}"
make -s -C "$root" wheel >/dev/null
wheel=$(ls "$root"/dist/baetyl_py-*.whl | head -n 1)
cd "$root"
exec "$root/.venv/bin/python" -m tools.kube.agent_image --wheel "$wheel" --out "$out"
