#!/usr/bin/env bash
# Checks that the given Python is >= 3.11 and can create a venv; on Debian/Ubuntu
# the venv module lives in a separate package (pythonX.Y-venv), installed here
# with apt-get when missing.
set -euo pipefail
py=${1:-python3}

if ! command -v "$py" >/dev/null 2>&1; then
  echo "error: $py not found; install Python >= 3.11 (apt-get install python3)" >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $("$py" --version 2>&1) is too old; Baetyl-Py needs Python >= 3.11" >&2
  exit 1
fi
if "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  exit 0
fi

ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
echo "==> $py lacks the venv module; installing python${ver}-venv with apt-get"
source "$(dirname "$0")/apt.sh"
apt_install "python${ver}-venv" python3-venv
