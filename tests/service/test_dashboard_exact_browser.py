"""The dashboard in a real headless Chromium against a ``fraudstream serve`` that scores only
what the test sends (no simulator), so that every figure and alert on the page is known.

A fresh model scores every transaction exactly its prior, 0.5, which is also the default alert
threshold: no score alerts, and a rule raises the alerts the feed shows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from pipelines.bench.server_process import ServerProcess, serve
from tests.browser import watched_page

SETTINGS = {"FRAUDSTREAM_ALERT_THRESHOLD": "0.5", "FRAUDSTREAM_LOG_LEVEL": "warning"}
ALERT_RULE = {"rules": [{"name": "large", "text": "amount > 100 -> alert"}]}
TIMEOUT_MS = 20_000
_numbers = itertools.count()


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with serve(settings=SETTINGS) as running:
        yield running


def _transaction(amount: float) -> dict[str, Any]:
    """A transaction of its own card (no cooldown holds its alert back)."""
    number = next(_numbers)
    return {
        "transaction_id": f"exact-{number}",
        "timestamp": datetime.now(UTC).isoformat(),
        "card_id": f"card-{number}",
        "terminal_id": "term-1",
        "amount": amount,
        "currency": "EUR",
    }


def _score(api: httpx.Client, *transactions: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.post("/v1/score/batch", json=list(transactions))
    assert response.status_code == 200, response.text
    scores: list[dict[str, Any]] = response.json()["scores"]
    return scores


def test_scores_exactly_at_the_threshold_are_not_drawn_as_alerting(
    browser: BrowserContext, server: ServerProcess
) -> None:
    problems: list[str] = []
    with httpx.Client(base_url=server.url, timeout=10) as api:
        scores = _score(api, *(_transaction(20.0) for _ in range(5)))
    assert {(s["score"], s["threshold"], s["decision"]) for s in scores} == {(0.5, 0.5, "pass")}
    page = watched_page(browser, problems)
    try:
        page.goto(f"{server.url}/")
        # The five share the bin that starts at the threshold; none is above it.
        bar = page.locator("#score-chart rect.bar")
        expect(bar).to_have_count(1, timeout=TIMEOUT_MS)
        expect(bar.locator("title")).to_have_text("0.50\u20130.55: 5 scores")
        expect(page.locator("#score-chart rect.over")).to_have_count(0)
        expect(page.locator("#score-chart text.threshold-label")).to_have_text(
            "threshold 0.50 · 0.0% above"
        )
    finally:
        page.close()
    assert problems == []


def test_the_feed_holds_still_under_the_pointer_and_shows_what_came_once_it_leaves(
    browser: BrowserContext, server: ServerProcess
) -> None:
    problems: list[str] = []
    page = watched_page(browser, problems)
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert api.put("/v1/rules", json=ALERT_RULE).status_code == 200
        try:
            page.goto(f"{server.url}/")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            first = [_transaction(500.0) for _ in range(3)]
            assert {s["decision"] for s in _score(api, *first)} == {"alert"}
            rows = page.locator("#alert-feed tbody tr.alert-row")
            expect(rows).to_have_count(3, timeout=TIMEOUT_MS)
            before = _row_ids(page)

            aimed = rows.nth(1)
            aimed.hover()
            box = aimed.bounding_box()
            late = _transaction(500.0)
            assert _score(api, late)[0]["decision"] == "alert"
            waiting = page.locator("#feed-waiting")
            expect(waiting).to_have_text("1 new", timeout=TIMEOUT_MS)
            expect(waiting).to_be_visible()
            # The alert reached the page, and the rows did not move under the pointer.
            assert _row_ids(page) == before
            assert aimed.bounding_box() == box
            assert aimed.get_attribute("data-transaction-id") == before[1]

            page.locator("#feed-title").hover()
            expect(rows).to_have_count(4)
            expect(rows.first).to_have_attribute("data-transaction-id", late["transaction_id"])
            expect(waiting).to_be_hidden()
            assert _row_ids(page)[1:] == before
        finally:
            page.close()
    assert problems == []


def _row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#alert-feed tbody tr.alert-row").evaluate_all(
        "(rows) => rows.map((row) => row.dataset.transactionId)"
    )
    return ids
