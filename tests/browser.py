"""Debian's Chromium for the browser tests (dashboard, rules panel, API docs, cross-site), as
a ``browser`` fixture registered in tests/conftest.py.

Playwright drives ``/usr/bin/chromium`` (``scripts/test`` installs it through
``ensure_chromium`` in ``scripts/bootstrap``). It is handed the browser's path, so it downloads
none: the machines have no network but the package registries. A missing browser is a failure,
not a skip, so that a machine without it cannot pass the suite by leaving a page untested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Even so, Chromium asks update.googleapis.com and accounts.google.com at start-up: with no
    # name resolving (the server is addressed by IP), not even a DNS query leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, on a fresh profile under ``tmp_path``; each test opens and
    sets up its own pages."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: ./scripts/test installs it (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def watched_page(
    browser: BrowserContext, problems: list[str], expected: Sequence[re.Pattern[str]] = ()
) -> Page:
    """A new page whose script errors and console errors are appended to ``problems``, but for
    console lines matching one of ``expected`` (the browser's own line for a request the test
    makes to be refused)."""
    page = browser.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(pattern.match(message.text) for pattern in expected):
            problems.append(f"console: {message.text}")

    page.on("console", console)
    return page
