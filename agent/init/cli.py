"""Command line of `baetyl-init`, which activates a node and starts baetyl-core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent.contracts.version import VERSION


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its commands grow with the agent (activate, install)."""
    parser = argparse.ArgumentParser(
        prog="baetyl-init",
        description=(
            "Activates an edge node with the Baetyl-Py cloud (CSR-based), writes its certificates "
            "and configuration, installs and starts baetyl-core, and exits."
        ),
        epilog="Activation arrives in a later release: this build reports its version only.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_usage(sys.stderr)
    sys.stderr.write("baetyl-init: no command to run yet in this build; see --help\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
