"""Command line of `baetyl-init`: activate a node with the cloud, then start baetyl-core.

    baetyl-init --cloud URL --token T [--prefix DIR] [--no-systemd]

Steps (each printed as a progress line): ask the cloud which node the token is for (and check
the clocks agree), generate the key and CSR, activate, write certificates and core.yml, start
baetyl-core, wait until it reports. Run again on an activated prefix, it only makes sure
baetyl-core runs. Failures print one message that says what to do, and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from agent.contracts.version import VERSION
from agent.core.config import CoreConfig
from agent.init import activate, files, keys, start
from agent.init.errors import AlreadyActivated, ExitCode, InitError

DEFAULT_WAIT = 120.0
Progress = Callable[[str], None]
"""Prints one progress line per step."""


@dataclass(frozen=True)
class Options:
    """The parsed command line."""

    cloud: str
    token: str
    prefix: Path
    systemd: bool
    start: bool
    api_listen: str
    base_config: Path | None
    wait: float


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="baetyl-init",
        description=(
            "Activates an edge node with the Baetyl-Py cloud: generates the node's key (it never "
            "leaves the node), has the cloud sign a certificate for it with the install token, "
            "writes core.yml and the certificates under the prefix, starts baetyl-core and waits "
            "until the node is online. Running it again on an activated prefix only makes sure "
            "baetyl-core runs."
        ),
        epilog=(
            "exit codes: 0 ok (or already activated), 1 failed, 2 usage, 3 token refused, "
            "4 cloud unreachable, 5 clock skew, 6 prefix holds another node, 7 not online in "
            "time. Guide: docs/install.md."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "--cloud",
        required=True,
        type=_cloud_url,
        metavar="URL",
        help="the cloud address of the install command, http(s)://HOST:PORT",
    )
    parser.add_argument(
        "--token", required=True, metavar="TOKEN", help="the install token (single use)"
    )
    parser.add_argument(
        "--prefix",
        type=Path,
        default=files.DEFAULT_PREFIX,
        metavar="DIR",
        help=f"installation directory (default {files.DEFAULT_PREFIX})",
    )
    parser.add_argument(
        "--no-systemd",
        dest="systemd",
        action="store_false",
        help="start baetyl-core detached (pid file, log file) instead of as a systemd unit",
    )
    parser.add_argument(
        "--no-start",
        dest="start",
        action="store_false",
        help="activate and write the files only (a container starts baetyl-core itself)",
    )
    parser.add_argument(
        "--api-listen",
        default=files.DEFAULT_API_LISTEN,
        metavar="HOST:PORT",
        help=f"the agent's local API in core.yml (default {files.DEFAULT_API_LISTEN})",
    )
    parser.add_argument(
        "--base-config",
        type=Path,
        metavar="FILE",
        help="a core.yml whose keys are used as the base of the one written",
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for the node to come online (default {DEFAULT_WAIT:.0f})",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    options = Options(
        cloud=args.cloud,
        token=args.token.strip(),
        prefix=args.prefix.absolute(),
        systemd=args.systemd,
        start=args.start,
        api_listen=args.api_listen,
        base_config=args.base_config,
        wait=args.wait,
    )
    stream = out or sys.stdout
    try:
        run(options, progress=lambda line: _say(stream, line))
    except InitError as exc:
        sys.stderr.write(f"baetyl-init: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    return int(ExitCode.OK)


def run(options: Options, *, progress: Progress) -> None:
    """Activate (unless already activated here), start baetyl-core, wait until it is online."""
    layout = files.Layout(options.prefix)
    client = activate.CloudClient(options.cloud)
    progress(f"asking the cloud at {options.cloud} which node this token installs")
    info, server_time = client.info(options.token)
    activate.check_clock(server_time)
    progress(f"node {info.nid} (namespace {info.namespace}, node {info.name})")
    found = files.installed(layout)
    if found is not None and found.nid != info.nid:
        raise AlreadyActivated(
            f"{options.prefix} already holds node {found.nid}, not {info.nid}: install this "
            "node under another --prefix, or stop baetyl-core and remove "
            f"{options.prefix} to replace the old node"
        )
    core = start.core_binary() if options.start else None
    if options.start and options.systemd:
        start.check_systemd()
    if found is not None:
        progress(f"{options.prefix} is already activated as {info.nid}: keeping it")
        config = found.config
    else:
        config = _activate(options, layout, client, info.nid, progress=progress)
    if core is None:
        progress("activated; baetyl-core is not started here (--no-start)")
        return
    _start(options, layout, config, core, progress=progress)


def _activate(
    options: Options,
    layout: files.Layout,
    client: activate.CloudClient,
    nid: str,
    *,
    progress: Progress,
) -> CoreConfig:
    files.prepare(layout)
    base = files.load_base(options.base_config) if options.base_config else None
    progress("generating the node key (ECDSA P-256) and its certificate request")
    key = keys.new_key()
    answer = client.activate(options.token, keys.csr_pem(key, nid))
    progress(f"activated: certificate valid for {answer.valid_days} days, broker {answer.mqtt}")
    files.write_node_files(
        layout, key_pem=keys.key_pem(key), cert_pem=answer.certificate, ca_pem=answer.ca
    )
    wanted = files.core_config(
        layout, mqtt_url=answer.mqtt, api_listen=options.api_listen, base=base
    )
    config = files.write_config(layout, wanted, expected_nid=answer.nid)
    progress(f"wrote {layout.config_file} and the certificates in {layout.node_dir}")
    return config


def _start(
    options: Options,
    layout: files.Layout,
    config: CoreConfig,
    core: Path,
    *,
    progress: Progress,
) -> None:
    pid: int | None = None
    if options.systemd:
        start.start_systemd(layout, core)
        progress(f"baetyl-core enabled and started by systemd ({start.UNIT_NAME})")
    else:
        pid, started = start.start_detached(layout, core)
        verb = "started" if started else "already running"
        progress(f"baetyl-core {verb} (pid {pid}, log {layout.core_log})")
    start.wait_online(layout, config, pid=pid, timeout=options.wait, progress=progress)
    progress("the node is online")


def _say(stream: TextIO, line: str) -> None:
    stream.write(f"==> {line}\n")
    stream.flush()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


def _cloud_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http(s)://HOST[:PORT], got {text!r}")
    return text.rstrip("/")


if __name__ == "__main__":
    sys.exit(main())
