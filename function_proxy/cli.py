"""Command line of `baetyl-function`, the function proxy (DESIGN §9, docs/functions.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from function_proxy.proxy import FunctionProxy, ProxySettings
from function_proxy.resolver import FUNCTIONS_FILE, RegistryResolver
from function_proxy.version import VERSION


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    defaults = ProxySettings()
    parser = argparse.ArgumentParser(
        prog="baetyl-function",
        description=(
            "The Baetyl-Py function proxy: routes ANY /{app} and /{app}/{function} calls to the "
            "runtime instances of function apps, round-robin, with a deadline per call."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "--registry",
        type=Path,
        required=True,
        metavar="FILE",
        help="the native backend's registry of ready instances (<run dir>/services.json); "
        f"the function index is read from {FUNCTIONS_FILE} beside it",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=(defaults.host, defaults.port),
        metavar="HOST:PORT",
        help=f"where to serve (default {defaults.host}:{defaults.port})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=defaults.timeout,
        metavar="SECONDS",
        help=f"deadline of one call, runtime included (default {defaults.timeout:g}); 504 after",
    )
    parser.add_argument(
        "--max-body",
        type=_positive(int),
        default=defaults.max_body,
        metavar="BYTES",
        help=f"largest request body (default {defaults.max_body}); 413 beyond",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    host, port = args.listen
    settings = ProxySettings(host=host, port=port, timeout=args.timeout, max_body=args.max_body)
    proxy = FunctionProxy(RegistryResolver(args.registry), settings)
    try:
        asyncio.run(proxy.serve())
    except OSError as exc:
        sys.stderr.write(f"baetyl-function: error: cannot listen on {host}:{port}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
