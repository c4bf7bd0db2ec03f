"""Command line of `baetyl-function`, the function proxy."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from function_proxy.version import VERSION


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its commands arrive with the features they run."""
    parser = argparse.ArgumentParser(
        prog="baetyl-function",
        description=(
            "The Baetyl-Py function proxy: routes /{app}/{function} calls to the runtime "
            "instances of function apps."
        ),
        epilog="Serving arrives in a later release: this build reports its version only.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_usage(sys.stderr)
    sys.stderr.write("baetyl-function: no command to run yet in this build; see --help\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
