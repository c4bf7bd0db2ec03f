"""A native program shipped as a zip: it serves its greeting on the port the node gives it."""

import http.server
import os
from pathlib import Path

GREETING = (Path(__file__).parent / "greeting.txt").read_text(encoding="utf-8").strip()


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the greeting."""

    def do_GET(self) -> None:
        body = f"{GREETING} from {os.environ['BAETYL_APP_NAME']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["BAETYL_SERVICE_DYNAMIC_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
