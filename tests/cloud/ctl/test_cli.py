"""`baetylctl`'s command line without a cloud: help everywhere, usage errors, a light import,
and the client's answers to servers that misbehave (silent, or not speaking JSON)."""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agent.contracts.version import VERSION
from cloud import ctl
from cloud.ctlkit import commands
from cloud.ctlkit.console import Console
from tests.cloud.ctl.conftest import BAETYLCTL, Ctl
from tests.harness.common import free_port


def command_paths() -> list[tuple[str, ...]]:
    """Every resource and every verb of the parser, so a new command cannot miss its test."""
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(commands.build_parser(VERSION), ())
    return found


COMMANDS = command_paths()


def test_every_resource_has_the_verbs_the_issue_asks_for() -> None:
    verbs = {path for path in COMMANDS if len(path) == 2}
    for resource in ("node", "app", "config", "secret", "registry", "certificate"):
        assert {(resource, "list"), (resource, "get"), (resource, "delete")} <= verbs
    assert {("node", "create"), ("node", "label"), ("app", "apply"), ("config", "apply")} <= verbs
    assert {("secret", "create"), ("registry", "create"), ("certificate", "create")} <= verbs


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    done = subprocess.run(
        [BAETYLCTL, *path, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: baetylctl {' '.join(path)}")
    if len(path) == 2:
        assert "--output" in done.stdout  # global options are accepted after the verb too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name a resource"),
        (("node",), "the following arguments are required: VERB"),
        (("node", "create"), "the following arguments are required: NAME"),
        (("node", "create", "x", "-l", "novalue"), "expected KEY=VALUE, got 'novalue'"),
        (("node", "create", "x", "--mode", "docker"), "invalid choice: 'docker'"),
        (("app", "apply"), "the following arguments are required: -f/--filename"),
        (("app", "list", "-o", "xml"), "invalid choice: 'xml'"),
        (("app", "list", "--timeout", "-1"), "the timeout must be positive"),
        (("registry", "create", "r", "--address", "a", "--username", "u"), "one of the arguments"),
        (("certificate", "create", "c", "--cert", "f"), "required: --key"),
        (("secret", "create", "s", "--from-literal", "a=1", "--from-literal", "a=2"), "'a' given"),
        (("nodes", "list"), "invalid choice: 'nodes'"),
    ],
)
def test_a_wrong_command_line_exits_2_with_usage(args: tuple[str, ...], message: str) -> None:
    done = subprocess.run(
        [BAETYLCTL, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"BAETYL_TOKEN": "t", "HOME": "/nonexistent"},
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "usage: baetylctl" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_main_returns_the_status_of_help_and_usage_errors_instead_of_exiting() -> None:
    assert ctl.main(["--version"]) == 0
    assert ctl.main(["app", "list", "-o", "xml"]) == 2


def test_baetylctl_imports_nothing_of_the_server_side() -> None:
    code = (
        "import sys, cloud.ctl; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'tortoise', 'cryptography', 'aiomqtt', 'prometheus_client')"
        " or m.startswith(('cloud.store', 'cloud.services', 'cloud.api', 'agent.core'))); "
        "print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"


async def test_main_runs_in_process_with_its_own_streams(offline_ctl: Ctl) -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(
        stdin=io.StringIO("name: x\n  bad: [\n"), stdout=out, stderr=err, env={"HOME": "/"}
    )
    status = await asyncio.to_thread(ctl.main, ["app", "apply", "-f", "-"], console=console)
    assert status == 1
    assert err.getvalue().startswith("error: stdin is neither valid YAML nor JSON")
    assert out.getvalue() == ""


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """A server that hangs on /v1/apps and answers /v1/configs with HTML, like a bad proxy."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    async def html(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    async def html_ok(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/v1/apps", hang)
    app.router.add_get("/v1/configs", html)
    app.router.add_get("/v1/secrets", html_ok)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        await runner.cleanup()


async def test_a_silent_server_times_out_with_a_clear_error(
    offline_ctl: Ctl, odd_server: str
) -> None:
    done = await offline_ctl("app", "list", "--url", odd_server, "--token", "t", "--timeout", "0.5")
    assert done.code == 1
    assert done.err.startswith(f"error: no answer from {odd_server} within 0.5 s (GET /v1/apps)")


async def test_an_error_that_is_not_json_is_quoted(offline_ctl: Ctl, odd_server: str) -> None:
    done = await offline_ctl("config", "list", "--url", odd_server, "--token", "t")
    assert done.code == 1
    assert done.err.startswith("error: <html>Bad Gateway</html> (HTTP 502, request ")


async def test_an_answer_that_is_not_json_is_an_error(offline_ctl: Ctl, odd_server: str) -> None:
    done = await offline_ctl("secret", "list", "--url", odd_server, "--token", "t")
    assert done.code == 1
    assert "with a body that is not JSON; is" in done.err
    assert "a Baetyl-Py cloud?" in done.err


def test_a_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    err = io.StringIO()
    console = Console(stderr=err, env={"HOME": str(tmp_path)})
    assert (
        ctl.main(["app", "list", "--url", "localhost:9004", "--token", "t"], console=console) == 1
    )
    assert "server URL 'localhost:9004' must look like http://host:port" in err.getvalue()
