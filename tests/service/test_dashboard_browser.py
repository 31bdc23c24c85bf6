"""The dashboard in a real headless Chromium, against ``fraudstream serve --simulate``.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``scripts/test`` installs it through
``ensure_chromium`` in ``scripts/bootstrap``). It is handed the browser's path, so it downloads
none: the machines have no network but the package registries. A missing browser is a failure,
not a skip, so that a machine without it cannot pass the suite by leaving the page untested.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect, sync_playwright

from pipelines.server_process import serve

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
SETTINGS = {
    "FRAUDSTREAM_SIMULATE_RATE": "50",
    # A small population starts in seconds (the history replay is most of the start-up).
    "FRAUDSTREAM_SIMULATE_CUSTOMERS": "200",
    "FRAUDSTREAM_SIMULATE_TERMINALS": "400",
    "FRAUDSTREAM_SIMULATE_HISTORY_DAYS": "10",
    # Labels a simulated day late rather than a week: at 50 transactions a second they mature
    # within seconds, so the model learns and its rolling AP is drawn before the screenshot.
    "FRAUDSTREAM_LABEL_DELAY": "1d",
    "FRAUDSTREAM_LOG_LEVEL": "warning",
}
SCREENSHOT = Path(__file__).resolve().parents[2] / "reports" / "dashboard.png"
ALERT_TIMEOUT_MS = 60_000
QUALITY_TIMEOUT_MS = 20_000


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, on a fresh profile under ``tmp_path``."""
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


def test_dashboard_shows_live_alerts_scores_and_the_model(
    browser: BrowserContext, tmp_path: Path
) -> None:
    problems: list[str] = []
    with serve(settings=SETTINGS) as server:
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda message: _console_error(message, problems))
        try:
            page.goto(f"{server.url}/")
            _assert_live_page(page)
            page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
        finally:
            # Closed before the server stops: uvicorn's graceful shutdown waits for an open
            # event stream, and the server would be killed after a 10 s wait instead.
            page.close()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "dashboard.png", SCREENSHOT)
    assert problems == []


def _assert_live_page(page: Page) -> None:
    rows = page.locator("#alert-feed tbody tr.alert-row")
    expect(rows.first).to_be_visible(timeout=ALERT_TIMEOUT_MS)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    # The rows came over the stream (EventSource), not only from GET /v1/alerts.
    expect(page.locator("#alert-feed")).to_have_attribute(
        "data-streamed", re.compile(r"^[1-9]\d*$"), timeout=ALERT_TIMEOUT_MS
    )
    _assert_alert_row(page)

    expect(page.locator("#model-name")).to_have_text("logistic")
    expect(page.locator("#model-version")).to_have_text(re.compile(r"^m\d{6}\+\d+$"))
    expect(page.locator("#score-chart rect.bar").first).to_be_visible()
    expect(page.locator("#score-chart line.threshold")).to_have_count(1)
    expect(page.locator("#rate-chart rect.rate").first).to_be_visible()
    # A line of three points at least: two samples with a figure, and the figure as of now.
    expect(page.locator("#quality-chart path.line")).to_have_attribute(
        "d", re.compile(r"^M[\d.,]+(L[\d.,]+){2,}$"), timeout=QUALITY_TIMEOUT_MS
    )


def _assert_alert_row(page: Page) -> None:
    cells = page.locator("#alert-feed tbody tr.alert-row").first.locator("td")
    expect(cells).to_have_count(6)
    expect(cells.nth(1)).not_to_be_empty()  # card
    expect(cells.nth(3)).to_have_text(re.compile(r"\d+\.\d\d"))  # amount
    expect(cells.nth(4)).to_have_text(re.compile(r"^(0\.\d{3}|1\.000)$"))  # score


def _console_error(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type == "error":
        problems.append(f"console: {message.text}")
