"""`baetylctl`, the REST client for people who manage a fleet: the console-script entry point.

Exit status: 0 done, 1 the command failed (the server's message, an unreachable server, a bad
file), 2 the command line is wrong. The parts live in `cloud.ctlkit`; this module only wires
them: parse, check local input, resolve server and token, run the requests in one event loop,
print.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from agent.contracts.version import VERSION
from cloud.ctlkit import commands, output
from cloud.ctlkit.actions import Call
from cloud.ctlkit.client import Client
from cloud.ctlkit.config import resolve
from cloud.ctlkit.console import Console
from cloud.ctlkit.errors import CtlError, UsageError

OK, FAILED, USAGE, BROKEN_PIPE = 0, 1, 2, 141


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Run one command; returns the exit status instead of exiting, for tests and embedding."""
    console = console or Console()
    parser = commands.build_parser(VERSION)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (status 2)
        return exc.code if isinstance(exc.code, int) else USAGE
    if args.resource is None:
        parser.print_usage(console.stderr)
        console.stderr.write("baetylctl: error: name a resource; see baetylctl --help\n")
        return USAGE
    url, token, fmt, timeout = commands.options(args)
    try:
        call = args.handler(args, console)
        target = resolve(url=url, token=token, env=console.env, warn=console.warn)
        client = Client(target, timeout=timeout, user_agent=f"baetylctl/{VERSION}")
        result = asyncio.run(_run(call, client))
    except UsageError as exc:
        leaf: argparse.ArgumentParser = args.leaf_parser
        leaf.print_usage(console.stderr)
        console.stderr.write(f"{leaf.prog}: error: {exc.message}\n")
        return USAGE
    except CtlError as exc:
        console.stderr.write(f"error: {exc.message}\n")
        return FAILED
    except KeyboardInterrupt:
        console.stderr.write("interrupted\n")
        return 130
    try:
        _show(result, fmt, console)
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and the status a shell expects of a
        # writer killed by SIGPIPE. Point stdout at /dev/null so the exit flush cannot fail too.
        _discard(console.stdout)
        return BROKEN_PIPE
    return FAILED if result.errors else OK


def _show(result: output.Result, fmt: str, console: Console) -> None:
    """Print the result on stdout; an empty list's note and any errors on stderr."""
    text = output.render(result, fmt)
    console.stdout.write(text)
    console.stdout.flush()
    if not text and fmt == "table" and result.empty:
        console.stderr.write(result.empty + "\n")
    for error in result.errors:
        console.stderr.write(f"error: {error}\n")


def _discard(stream: TextIO) -> None:
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):  # not backed by a file (tests pass StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


async def _run(call: Call, client: Client) -> output.Result:
    """One client session for the whole command (apply may send several requests)."""
    async with client as api:
        return await call(api)


if __name__ == "__main__":
    sys.exit(main())
