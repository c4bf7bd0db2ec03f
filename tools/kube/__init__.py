"""A local Kubernetes for tests and the demo: a control plane and one real node on this machine.

`build.sh` builds the binaries once per machine; `cluster.py` (`make kube-up` / `make kube-down`)
starts and removes the cluster. docs/kubernetes.md tells the whole recipe.
"""
