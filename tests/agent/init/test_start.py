"""Starting baetyl-core: the systemd unit for a prefix, the detached start, waiting for online."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from agent.core.config import parse_config
from agent.init import start
from agent.init.errors import NotOnline
from agent.init.files import Layout
from tests.agent.core.test_systemd_unit import UNIT, parse_unit

# Where the two units may differ: the paths, and the state directories the prefix replaces.
_PREFIX_ONLY = {"ExecStart", "StateDirectory", "StateDirectoryMode", "LogsDirectory"}
_PREFIX_ONLY |= {"LogsDirectoryMode"}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "opt")
    for directory in (layout.log_dir, layout.pid_file.parent, layout.config_file.parent):
        directory.mkdir(parents=True)
    return layout


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[Path]:
    """A `baetyl-core` that logs a line and sleeps; killed after the test."""
    path = tmp_path / "bin" / "baetyl-core"
    path.parent.mkdir()
    path.write_text('#!/bin/sh\necho "cloud link up"\nwhile :; do sleep 1; done\n')
    path.chmod(0o755)
    yield path
    for process in psutil.process_iter():
        try:
            if str(path) in process.cmdline():
                process.kill()
        except psutil.Error:
            continue


def test_the_installed_unit_makes_the_same_choices_as_the_shipped_one(layout: Layout) -> None:
    ours = parse_unit(start.unit_text(layout, Path("/x/venv/bin/baetyl-core")))
    shipped = parse_unit(UNIT.read_text(encoding="utf-8"))
    for section in ("Unit", "Service", "Install"):
        mine = {k: v for k, v in ours[section].items() if k not in _PREFIX_ONLY}
        theirs = {k: v for k, v in shipped[section].items() if k not in _PREFIX_ONLY}
        assert mine == theirs, section
    assert ours["Service"]["ExecStart"] == [f"/x/venv/bin/baetyl-core -c {layout.config_file}"]


def test_systemd_analyze_verify_accepts_the_installed_unit(
    layout: Layout, stand_in: Path, tmp_path: Path
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "baetyl-core.service"
    unit.write_text(start.unit_text(layout, stand_in))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "baetyl-core" in line] == []


def test_a_detached_core_is_started_once(layout: Layout, stand_in: Path) -> None:
    assert start.running_pid(layout) is None
    pid, started = start.start_detached(layout, stand_in)
    assert started
    assert int(layout.pid_file.read_text()) == pid
    process = psutil.Process(pid)
    assert process.cmdline()[-2:] == ["-c", str(layout.config_file)]
    assert os.getsid(pid) == pid  # its own session: a Ctrl-C of the installer never reaches it
    assert start.running_pid(layout) == pid
    assert start.start_detached(layout, stand_in) == (pid, False)
    assert start.stop_detached(layout)
    assert start.running_pid(layout) is None
    assert not start.stop_detached(layout)


def test_a_pid_file_naming_another_process_starts_a_new_core(layout: Layout) -> None:
    layout.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not baetyl-core
    assert start.running_pid(layout) is None
    layout.pid_file.write_text("not a pid\n")
    assert start.running_pid(layout) is None


def config(api: str | None) -> Any:
    text = f"cloud: {{mqtt: 'mqtts://broker:8883'}}\napi: {{listen: {json.dumps(api)}}}\n"
    return parse_config(text, source="core.yml", base_dir=Path("/"), check_files=False)


def test_a_core_that_exits_is_reported_with_its_log(layout: Layout, tmp_path: Path) -> None:
    failing = tmp_path / "baetyl-core"
    failing.write_text("#!/bin/sh\necho 'core.yml: node.cert: missing' >&2\nexit 2\n")
    failing.chmod(0o755)
    pid, _ = start.start_detached(layout, failing)
    with pytest.raises(NotOnline, match="exited right after starting") as failed:
        start.wait_online(layout, config(None), pid=pid, timeout=10, progress=print)
    assert "node.cert: missing" in str(failed.value)


def test_without_health_the_log_line_tells_the_link_is_up(layout: Layout, stand_in: Path) -> None:
    pid, _ = start.start_detached(layout, stand_in)
    start.wait_online(layout, config(None), pid=pid, timeout=10, progress=print)
    os.kill(pid, signal.SIGKILL)


class _Health(BaseHTTPRequestHandler):
    answer: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        del args


@pytest.fixture
def health() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {"answer": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_online_means_the_link_is_up_and_a_report_was_accepted(
    layout: Layout, health: tuple[str, type[_Health]]
) -> None:
    address, handler = health
    lines: list[str] = []
    handler.answer = {"status": "ok", "cloud": {"connected": True, "reports": 0}}
    with pytest.raises(NotOnline, match="runs but has not reached the cloud within 1 s") as late:
        start.wait_online(layout, config(address), pid=None, timeout=1, progress=lines.append)
    assert "mqtts://broker:8883 is reachable from this machine" in str(late.value)
    assert lines == ["baetyl-core is running; waiting for it to reach the cloud"]
    handler.answer = {"status": "ok", "cloud": {"connected": True, "reports": 1}}
    start.wait_online(layout, config(address), pid=None, timeout=5, progress=lines.append)
