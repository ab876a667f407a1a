"""The page sends its API key to its own server only.

Stems kept in S3 come as presigned links to the bucket; the page fetched them with the same
`request()` it uses for the API, so the key went along. Here the other origin is a small HTTP
server on 127.0.0.1 (another port is another origin) that would accept an Authorization header
(its CORS answer allows one), so a key sent there is recorded rather than blocked by the browser.
"""

from __future__ import annotations

import http.server
import threading

import pytest

pytestmark = pytest.mark.browser

KEY = "a-key-long-enough-for-the-check"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, *args) -> None:
        pass

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Authorization")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.end_headers()

    def do_GET(self) -> None:
        self.seen.append({name.lower(): value for name, value in self.headers.items()})
        body = b"stem bytes"
        self.send_response(200)
        self._cors()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_api_key_goes_to_the_page_origin_and_never_to_a_presigned_link(page, live_server):
    server = live_server(api_keys=[KEY])
    bucket = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=bucket.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Recorder.seen = []
    try:
        page.goto(server.url)
        page.evaluate("key => localStorage.setItem('musicsep.apiKey', key)", KEY)
        presigned = f"http://127.0.0.1:{bucket.server_address[1]}/bucket/stem.wav?X-Amz-Signature=abc"
        answers = page.evaluate(
            """async ([presigned]) => {
            const api = await import('/static/js/api.js');
            const own = await api.request('/api/v1/jobs?limit=1');
            const other = await api.request(presigned);
            return [own.status, await other.text()];
        }""",
            [presigned],
        )
    finally:
        bucket.shutdown()
        bucket.server_close()
        thread.join(timeout=10)
    assert answers == [200, "stem bytes"]  # 200: the key did go to the page's own server
    assert len(_Recorder.seen) == 1
    assert "authorization" not in _Recorder.seen[0]
