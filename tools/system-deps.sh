#!/usr/bin/env bash
# Installs the system services the test suite starts for real (DESIGN §12):
# Mosquitto (broker + clients), what builds its node-limits plugin (a C compiler and
# Mosquitto's plugin headers, decision #98) and PostgreSQL. Only what is missing is installed.
set -euo pipefail
source "$(dirname "$0")/apt.sh"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -f /usr/include/mosquitto_plugin.h ] || missing+=(mosquitto-dev)
[ -f /usr/include/mosquitto.h ] || missing+=(libmosquitto-dev)
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> system packages present: mosquitto, mosquitto-clients, gcc, mosquitto-dev, postgresql"
  exit 0
fi
apt_install "${missing[@]}"
