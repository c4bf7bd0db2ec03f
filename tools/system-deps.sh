#!/usr/bin/env bash
# Installs the system packages a target needs, only those missing (tools/apt.sh):
#   tools/system-deps.sh        the test suite's real services (DESIGN §12): Mosquitto (broker and
#                               clients), what builds its node-limits plugin (a C compiler and
#                               Mosquitto's plugin headers, decision #98), PostgreSQL, and
#                               debootstrap, systemd-nspawn and qemu-user (tests/platforms)
#   tools/system-deps.sh demo   `make demo`: Mosquitto, the plugin's build tools, curl or wget
#   tools/system-deps.sh kube   the local Kubernetes node (tools/kube): etcd, containerd, runc,
#                               the CNI plugins, busybox-static for the test image, iptables and
#                               iproute2; the test target installs these too
set -euo pipefail
source "$(dirname "$0")/apt.sh"
target="${1:-test}"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -f /usr/include/mosquitto_plugin.h ] || missing+=(mosquitto-dev)
[ -f /usr/include/mosquitto.h ] || missing+=(libmosquitto-dev)
kube_missing() {
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
}
if [ "$target" = kube ]; then
  missing=()
  wanted="etcd, containerd, runc, CNI plugins, busybox-static, iptables, iproute2"
  kube_missing
elif [ "$target" = demo ]; then
  wanted="mosquitto, gcc, mosquitto-dev, curl or wget"
  command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 || missing+=(curl)
else
  wanted="mosquitto, mosquitto-clients, gcc, mosquitto-dev, postgresql, debootstrap, systemd-container, qemu-user-static, binfmt-support and the local node's packages"
  kube_missing
  command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  # The systemd platform test (tests/platforms): a Debian rootfs booted with systemd-nspawn.
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
  # The ARM platform tests: arm64 and armhf userlands under qemu-user through binfmt_misc.
  [ -x /usr/bin/qemu-aarch64-static ] && [ -x /usr/bin/qemu-arm-static ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || [ -x /usr/sbin/update-binfmts ] || missing+=(binfmt-support)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> system packages present: $wanted"
  exit 0
fi
echo "==> installing missing system packages with apt-get: ${missing[*]}"
apt_install "${missing[@]}"
