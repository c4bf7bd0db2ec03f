"""Debian root filesystems the tests boot or enter as a node's userland: a real systemd as PID 1
(systemd-nspawn), built once per machine with debootstrap and cached under
~/.cache/baetyl-py/platforms/. `python -m tools.platforms.rootfs --help` is the developers' entry;
tests/platforms/ the tests' (docs/development.md, "Real platforms").
"""
