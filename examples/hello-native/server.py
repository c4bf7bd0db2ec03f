"""hello-native: a small HTTP service for Baetyl-Py nodes, standard library only.

The node gets this file as a configuration (hello-server, mounted at app/) and runs
`python3 app/server.py` in the instance directory, next to the greeting configuration (conf/)
and the token secret (secret/, 0600):

    GET /         the greeting, who serves it, and proof that the token was read: its length and
                  the start of its SHA-256, never the token itself
    GET /health   200 "ok"

HELLO_PORT (default 8080) and HELLO_HOST (default 0.0.0.0) say where it listens. The files are
read on every request, so what it shows is what is on disk.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

GREETING = Path("conf/greeting.txt")
TOKEN = Path("secret/token")


def page() -> str:
    """The text GET / answers with."""
    greeting = GREETING.read_text(encoding="utf-8").strip()
    token = TOKEN.read_text(encoding="utf-8").strip()
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    app = os.environ.get("BAETYL_APP_NAME", "hello")
    version = os.environ.get("BAETYL_APP_VERSION", "-")
    node = os.environ.get("BAETYL_NODE_NAME", "-")
    return (
        f"{greeting}\n"
        f"app {app} version {version} on node {node}, pid {os.getpid()}\n"
        f"secret token: {len(token)} characters, sha256 {digest[:12]}...\n"
    )


class Handler(BaseHTTPRequestHandler):
    """GET / and GET /health; anything else is a 404."""

    server_version = "hello-native/1"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, "ok\n")
            return
        if self.path != "/":
            self._answer(404, "not found\n")
            return
        try:
            text = page()
        except OSError as exc:  # a mount missing: say which, without a traceback
            self._answer(500, f"cannot read {exc.filename}: {exc.strerror}\n")
            return
        self._answer(200, text)

    def _answer(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        if self.path != "/health":  # probes would fill the log
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    """Serve until SIGTERM (the agent stopping or replacing the app) or SIGINT."""
    host = os.environ.get("HELLO_HOST", "0.0.0.0")  # noqa: S104 - an edge service, on purpose
    port = int(os.environ.get("HELLO_PORT", "8080"))
    signal.signal(signal.SIGTERM, _stop)
    with ThreadingHTTPServer((host, port), Handler) as server:
        sys.stderr.write(f"hello-native serving on {host}:{port}\n")
        try:
            server.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            sys.stderr.write("hello-native stopping\n")


if __name__ == "__main__":
    main()
