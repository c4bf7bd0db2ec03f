#!/usr/bin/env bash
# Builds the Kubernetes binaries the local node needs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl) from Debian's `kubernetes` source package with Debian's Go,
# offline, once per machine: they are cached under ~/.cache/baetyl-py/kube/bin/ and a second run
# only checks them. Recipe and measurements: docs/kubernetes.md. About 7 minutes on 2 cores.
#
#   tools/kube/build.sh          build what is missing (installs the build packages with apt)
#   tools/kube/build.sh --check  exit 0 when every binary is cached, 1 otherwise; builds nothing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../apt.sh"

cache="${BAETYL_CACHE:-$HOME/.cache/baetyl-py}/kube"
bin="$cache/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
version="1.20.2"  # what Debian bookworm's source package `kubernetes` (1.20.5+really1.20.2) holds

cached() {
  local name
  for name in "${binaries[@]}"; do
    [ -x "$bin/$name" ] || return 1
  done
  [ "$(cat "$bin/VERSION" 2>/dev/null)" = "$version" ]
}

if [ "${1:-}" = "--check" ]; then
  cached
  exit
fi
if [ $# -gt 0 ]; then
  echo "usage: tools/kube/build.sh [--check]" >&2
  exit 2
fi
if cached; then
  echo "==> Kubernetes $version binaries cached in $bin"
  exit 0
fi

started=$SECONDS
step() { echo "==> [$((SECONDS - started)) s] $*"; }

# Source packages come from the same mirror as the machine's binary packages: the deb-src
# entries are derived from its own apt sources, never named here.
src_list=/etc/apt/sources.list.d/baetyl-py-deb-src.sources
if ! apt-get indextargets 2>/dev/null | grep -q "Created-By: Sources"; then
  step "enabling deb-src entries (from the machine's own apt sources) in $src_list"
  sources=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  uris=$(printf '%s\n' "$sources" | awk '/^URIs:/ && !/security/ {print $2; exit}')
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  if [ -z "$uris" ] && [ -f /etc/apt/sources.list ]; then
    uris=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  if [ -z "$uris" ]; then
    echo "error: no Debian mirror found in the apt sources; add a deb-src entry by hand" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$uris" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg | $sudo tee "$src_list" >/dev/null
  unset BAETYL_APT_UPDATED  # the new entries need their own `apt-get update`
fi

step "build packages: Go, make, rsync, jq, Debian's reflect2 (for the vendored fix below)"
apt_install golang-go rsync jq make golang-github-modern-go-reflect2-dev

work="$cache/src"
tree="$work/kubernetes-$version"
if [ ! -d "$tree" ]; then
  step "fetching the source package into $work"
  rm -rf "$work"
  mkdir -p "$work"
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null)
  tar -C "$work" -xzf "$(ls "$work"/kubernetes_*.orig.tar.gz | head -n 1)"
  [ -d "$tree" ] || { echo "error: $tree not found in the source package" >&2; exit 1; }
fi

# The vendored reflect2 v1.0.1 crashes under Go >= 1.18 (fatal error in mapiterinit on the
# first custom-resource request): Debian's packaged copy replaces its Go and assembly files.
step "replacing the vendored reflect2 with Debian's"
vendored="$tree/vendor/github.com/modern-go/reflect2"
find "$vendored" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$vendored/"
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$vendored/" 2>/dev/null || true

# A GOPATH-mode build as Debian's own rules do it (a plain `go build -mod=vendor` fails).
step "building ${binaries[*]} (about 7 minutes on 2 cores)"
export GOPATH="$work/.go" GOCACHE="$cache/go-build" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor
export KUBE_GIT_VERSION="v$version" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$tree" "$GOPATH/src/k8s.io/kubernetes"
what=""
for name in "${binaries[@]}"; do
  what="$what cmd/$name"
done
(cd "$GOPATH/src/k8s.io/kubernetes" && make WHAT="${what# }" >"$cache/build.log" 2>&1) || {
  echo "error: the build failed; the end of $cache/build.log:" >&2
  tail -n 30 "$cache/build.log" >&2
  exit 1
}

mkdir -p "$bin"
for name in "${binaries[@]}"; do
  found=$(find "$tree/_output" -type f -name "$name" -perm -u+x | head -n 1)
  [ -n "$found" ] || { echo "error: $name was not built (see $cache/build.log)" >&2; exit 1; }
  install -m 0755 "$found" "$bin/$name"
done
echo "$version" >"$bin/VERSION"
# The tree with its build output and Go's build cache are about 2.8 GB; only the binaries are
# kept (379 MB). A later build of other binaries starts again from the source package.
rm -rf "$work" "$GOCACHE"
step "done: $(cd "$bin" && du -ch "${binaries[@]}" | tail -n 1 | cut -f1) of binaries in $bin"
