"""Browser fixtures: Debian's headless Chromium driven by Playwright, and the real server harness.

Playwright's own browser download does not work on the project machines, so the browser is
`/usr/bin/chromium` (`make test` installs it); without it or without playwright, tests skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


# Module scope: Playwright's sync API runs an event loop on the main thread while it is open, and
# tests collected after the browser tests must be free to call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    # Separation and analysis share two busy cores with other work: state waits get room, not sleeps.
    sync_api.expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    """A fresh context per test (own storage), with console errors collected for the assertions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(60_000)
    opened = context.new_page()
    opened.console_errors = []
    opened.on("pageerror", lambda error: opened.console_errors.append(str(error)))
    yield opened
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
