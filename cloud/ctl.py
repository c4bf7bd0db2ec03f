"""Command line of `baetylctl`, the REST client for people who manage a fleet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent.contracts.version import VERSION


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its commands arrive with the features they run."""
    parser = argparse.ArgumentParser(
        prog="baetylctl",
        description=(
            "Manage nodes, applications, configurations, secrets, certificates and registries "
            "of a Baetyl-Py cloud through its REST API."
        ),
        epilog="Resource commands arrive in a later release: this build reports its version only.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_usage(sys.stderr)
    sys.stderr.write("baetylctl: no command to run yet in this build; see --help\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
