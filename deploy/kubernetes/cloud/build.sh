#!/usr/bin/env bash
# Builds the cloud's container image offline from the wheel, without Docker or a registry:
# this machine's python3, the wheel with its `cloud` and `postgres` extras, this machine's
# Mosquitto and the node-limits plugin compiled against it, written as a docker-archive
# (tools/kube/cloud_image.py). Load it on every node that may run the cloud's pods with
# `ctr -n k8s.io images import FILE` (K3s: `k3s ctr images import FILE`) or `docker load -i FILE`.
#
#   deploy/kubernetes/cloud/build.sh [OUT.tar]      default: dist/baetyl-py-cloud.tar
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="${1:-$root/dist/baetyl-py-cloud.tar}"
make -s -C "$root" wheel >/dev/null
wheel=$(ls "$root"/dist/baetyl_py-*.whl | head -n 1)
cd "$root"
exec "$root/.venv/bin/python" -m tools.kube.cloud_image --wheel "$wheel" --out "$out"
