"""Command line of `baetyl-cloud`, the cloud management suite server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.contracts.version import VERSION
from cloud import logs
from cloud.errors import CloudError
from cloud.secretbox import SecretBoxError
from cloud.serve import serve
from cloud.services import tokens
from cloud.services.bootstrap import prepare_data_dir
from cloud.settings import CloudSettings, QuotaDefaults
from cloud.store.db import StoreError, check_url, close_store, open_store


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _db_url(text: str) -> str:
    try:
        return check_url(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="baetyl-cloud",
        description=(
            "The Baetyl-Py cloud management suite: REST API over a Tortoise store, node shadows "
            "exchanged with edge agents over MQTT, PKI and the online installer."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the REST API server")
    _data_and_db(serve_cmd)
    serve_cmd.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 9004),
        metavar="HOST:PORT",
        help="address of the REST API (default 127.0.0.1:9004)",
    )
    serve_cmd.add_argument(
        "--no-mqtt",
        action="store_true",
        help="run without the MQTT side (required in this release: MQTT arrives with a later one)",
    )
    serve_cmd.add_argument(
        "--max-nodes",
        type=_count,
        default=0,
        metavar="N",
        help="default maxNodeCount quota per namespace (0 = unlimited)",
    )
    serve_cmd.add_argument(
        "--max-apps",
        type=_count,
        default=0,
        metavar="N",
        help="default maxAppCount quota per namespace (0 = unlimited)",
    )

    token_cmd = commands.add_parser("token", help="manage API tokens")
    token_actions = token_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="create a token and print it")
    _data_and_db(create)
    create.add_argument(
        "--namespace", default="default", help="tenant namespace (created if missing)"
    )
    create.add_argument("--role", choices=["admin", "read"], default="admin")
    create.add_argument("--description", default="", help="what the token is for")
    return parser


def _data_and_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="holds cloud.db (SQLite), admin.token and secret.key",
    )
    parser.add_argument(
        "--db",
        type=_db_url,
        metavar="URL",
        help="database URL (default sqlite in DIR/cloud.db; postgres://… for PostgreSQL)",
    )


async def _create_token(args: argparse.Namespace) -> int:
    settings = CloudSettings(data_dir=args.data_dir, db_url=args.db)
    prepare_data_dir(settings.data_dir)
    await open_store(settings.database_url)
    try:
        _, plain = await tokens.issue(args.namespace, args.role, description=args.description)
    finally:
        await close_store()
    sys.stdout.write(plain + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        if args.command == "serve":
            if not args.no_mqtt:
                parser.error("the MQTT side is not available in this release yet; pass --no-mqtt")
            host, port = args.listen
            settings = CloudSettings(
                data_dir=args.data_dir,
                db_url=args.db,
                host=host,
                port=port,
                mqtt=None,
                quotas=QuotaDefaults(max_node_count=args.max_nodes, max_app_count=args.max_apps),
            )
            asyncio.run(serve(settings))
            return 0
        return asyncio.run(_create_token(args))
    except (StoreError, SecretBoxError, CloudError, OSError) as exc:
        sys.stderr.write(f"baetyl-cloud: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
