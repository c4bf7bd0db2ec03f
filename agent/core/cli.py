"""Command line of `baetyl-core`, the edge agent process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent.contracts.version import VERSION


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its commands grow with the agent (sync, engine, local API)."""
    parser = argparse.ArgumentParser(
        prog="baetyl-core",
        description=(
            "The Baetyl-Py edge agent: keeps the node's shadow in sync with the cloud over MQTT "
            "and runs the desired applications as native processes or on Kubernetes."
        ),
        epilog="The run command arrives in a later release: this build reports its version only.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_usage(sys.stderr)
    sys.stderr.write("baetyl-core: no command to run yet in this build; see --help\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
