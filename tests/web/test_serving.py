"""The page is served at / beside the API without shadowing any of it (no browser needed)."""

from __future__ import annotations

import httpx


def test_page_and_modules_are_served_and_the_api_paths_still_answer(live_server):
    server = live_server(api_keys=["a-key-long-enough-for-the-check"])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/js/app.js">' in page.text
        for module in (
            "app",
            "api",
            "events",
            "player",
            "result",
            "library",
            "waveform",
            "transport",
            "progress",
            "musickey",
            "stemchoice",
        ):
            served = client.get(f"/static/js/{module}.js")
            assert served.status_code == 200 and "javascript" in served.headers["content-type"]
        assert client.get("/static/style.css").status_code == 200
        # The page is open; the API behind it still asks for the key.
        assert client.get("/api/v1/models").status_code == 401
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/docs").status_code == 200
        assert "/" not in client.get("/openapi.json").json()["paths"]
