"""Fixtures the dashboard's browser tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.service.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS


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
