# Sourced by the tools/ scripts: apt_install PKG... installs Debian packages,
# running `apt-get update` once first, as root or through sudo.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "error: need root (or sudo) to install: $*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install these packages by hand: $*" >&2
    return 1
  fi
  if [ -z "${BAETYL_APT_UPDATED:-}" ]; then
    echo "==> apt-get update"
    $sudo apt-get update -q >/dev/null
    export BAETYL_APT_UPDATED=1
  fi
  echo "==> apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
