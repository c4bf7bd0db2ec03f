"""Command line of `baetyl-core`, the edge agent process."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.contracts.kit.plugins import PluginError
from agent.contracts.version import VERSION
from agent.core import logsetup
from agent.core.backend import NodeIdentity
from agent.core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    CoreConfig,
    load_config,
    node_identity,
    unsupported,
)
from agent.core.upgrade import launcher


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="baetyl-core",
        description=(
            "The Baetyl-Py edge agent: keeps the node's shadow in sync with the cloud over MQTT "
            "and runs the desired applications as native processes. Apps keep running when the "
            "agent stops; the next start adopts them."
        ),
        epilog="Configuration reference: docs/agent.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        metavar="FILE",
        help=f"the core.yml to run with (default {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the configuration and the node certificate, print the node id, and exit",
    )
    return parser


def _checked(path: Path) -> tuple[CoreConfig, NodeIdentity]:
    """The configuration, refused when this agent cannot run it, and the node it is for."""
    config = load_config(path)
    problems = unsupported(config)
    if problems:
        raise ConfigError(path, problems)
    return config, node_identity(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        config, identity = _checked(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"baetyl-core: {exc}\n")
        return 2
    if args.check:
        sys.stdout.write(f"{args.config}: ok, node {identity.nid}\n")
        return 0
    venv = launcher.chosen_venv(config.store.dir)
    if venv is not None:
        launcher.exec_core(venv, _argv(argv))
    logsetup.configure(config.log.level, config.log.format)
    # 022, not 077: apps are the agent's children and may drop privileges, so their run
    # directories must stay reachable (0755, docs/install.md); the agent's own private files
    # (store, keys, bookkeeping) get explicit owner-only modes whatever the umask.
    os.umask(0o022)
    from agent.core.app import Core, CoreCrashed  # noqa: PLC0415 - `--help` and `--check` stay light

    async def run() -> Path | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        core = Core(config, identity=identity, config_file=args.config.absolute())
        await core.run_until(stop)
        return core.switch_to

    try:
        switch_to = asyncio.run(run())
    except (OSError, CoreCrashed, PluginError) as exc:
        sys.stderr.write(f"baetyl-core: {exc}\n")
        return 1
    if switch_to is not None:
        # An upgrade: the agent stopped as for SIGTERM (apps keep running); the new version
        # takes over this process. If it fails, the rollback guard brings this one back.
        launcher.exec_core(switch_to, ["-c", str(args.config.absolute())])
    return 0


def _argv(argv: Sequence[str] | None) -> list[str]:
    """The arguments this process was started with, for the same start in another version."""
    return list(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
