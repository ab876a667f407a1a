"""Runs `musicsep ARGS...` with `HF_ENDPOINT` pointing at a stand-in hub on 127.0.0.1 that answers
404 to every request: the network check before a download passes, the hub has no such model, and
Demucs goes on to its legacy repository (whose host does not resolve in a loopback-only namespace).

Run by tests/cli/test_cli_offline.py inside `unshare -n`; exits with the CLI's status, its stdout
and stderr passed through unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NotFound(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _not_found


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        return subprocess.run([sys.executable, "-m", "musicsep.cli", *sys.argv[1:]], env=env, timeout=120).returncode
    finally:
        server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
