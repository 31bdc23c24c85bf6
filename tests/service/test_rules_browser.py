"""The dashboard's rules panel in a real headless Chromium against `fraudstream serve`: add,
edit, disable, delete and roll back rules with the admin key, and the grammar's error shown
next to the field it is about."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import (
    BrowserContext,
    Locator,
    Page,
    expect,
)

from pipelines.bench.server_process import serve
from service.auth import hash_key
from tests.browser import watched_page
from tests.service.client import transaction
from tests.service.test_dashboard_browser import (
    ACTION_TIMEOUT_MS,
    ADMIN_KEY,
    REFUSED,
    REPORTS,
    _use_key,
)

RULES_SCREENSHOT = REPORTS / "dashboard-rules.png"
SETTINGS = {
    "FRAUDSTREAM_API_KEYS": json.dumps({hash_key(ADMIN_KEY): ["admin"]}),
    "FRAUDSTREAM_LOG_LEVEL": "warning",
    "FRAUDSTREAM_SNAPSHOT_EVERY": "1d",
}
HEADERS = {"authorization": f"Bearer {ADMIN_KEY}"}
REFUSED_RULE = re.compile(r"^Failed to load resource: the server responded with a status of 422\b")
"""The browser's own line for the save the test makes with a typo, refused as it should be."""


def _in_force(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/v1/rules", headers=HEADERS)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def _rule(page: Page, name: str) -> Locator:
    return page.locator(f'#rules-table tbody tr[data-rule="{name}"]')


def _add(page: Page, name: str, condition: str, action: str) -> None:
    page.fill("#rule-new-name", name)
    page.fill("#rule-new-condition", condition)
    page.select_option("#rule-new-action", action)
    page.get_by_role("button", name="Add rule").click()


def _save(page: Page, version: int) -> None:
    page.get_by_role("button", name="Save as new version").click()
    expect(page.locator("#rules-message")).to_contain_text("is in force", timeout=ACTION_TIMEOUT_MS)
    expect(page.locator("#rules-note")).to_contain_text(f"version {version},")


def _a_review_in_the_feed(page: Page, api: httpx.Client) -> None:
    """A review a rule asked for reaches the alert feed, marked and naming its rule."""
    review = {"rules": [{"name": "web", "text": 'channel == "ecommerce" -> review'}]}
    assert api.put("/v1/rules", json=review, headers=HEADERS).status_code == 200
    now = datetime.now(UTC) - timedelta(minutes=1)
    body = transaction(1, timestamp=now.isoformat(), channel="ecommerce")
    scored = api.post("/v1/score", json=body, headers=HEADERS)
    assert scored.json()["decision"] == "review", scored.text
    row = page.locator('#alert-feed tbody tr[data-transaction-id="tx-1"]')
    expect(row.locator(".badge.review")).to_have_text("review", timeout=ACTION_TIMEOUT_MS)
    expect(row.locator(".reason.rule")).to_have_text("rule web")


def test_rules_panel_adds_edits_refuses_disables_deletes_and_rolls_back(
    browser: BrowserContext, tmp_path: Path
) -> None:
    problems: list[str] = []
    settings = {**SETTINGS, "FRAUDSTREAM_DATA_DIR": str(tmp_path / "data")}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as api:
        page = watched_page(browser, problems, expected=[REFUSED, REFUSED_RULE])
        try:
            page.goto(f"{server.url}/")
            expect(page.locator("#rules-note")).to_contain_text("401")
            _use_key(page, ADMIN_KEY)
            expect(page.locator("#rules-note")).to_contain_text("no rule set written yet")

            _add(page, "big", "amount > 1000", "alert")
            _add(page, "house", 'terminal_id == "T-1"', "allow")
            _save(page, 1)
            assert [(r["name"], r["text"], r["action"]) for r in _in_force(api)["rules"]] == [
                ("big", "amount > 1000 -> alert", "alert"),
                ("house", 'terminal_id == "T-1" -> allow', "allow"),
            ]

            # A typo: refused, said under the condition it is about, nothing stored.
            _rule(page, "house").get_by_label("Rule 2 condition").fill('termnal_id == "T-1"')
            page.get_by_role("button", name="Save as new version").click()
            error = _rule(page, "house").locator(".field-error")
            expect(error).to_contain_text("unknown field 'termnal_id'", timeout=ACTION_TIMEOUT_MS)
            expect(_rule(page, "house").get_by_label("Rule 2 condition")).to_have_attribute(
                "aria-invalid", "true"
            )
            expect(_rule(page, "big").locator(".field-error")).to_have_count(0)
            assert _in_force(api)["version"] == 1
            page.locator("#rules-panel").screenshot(path=tmp_path / "rules.png")

            # Fixed, the other rule switched off and made a review: version 2.
            _rule(page, "house").get_by_label("Rule 2 condition").fill('terminal_id == "T-2"')
            _rule(page, "big").get_by_label("Rule 1 enabled").uncheck()
            _rule(page, "big").get_by_label("Rule 1 action").select_option("review")
            _save(page, 2)
            second = {r["name"]: r for r in _in_force(api)["rules"]}
            assert second["big"]["enabled"] is False
            assert second["big"]["text"] == "amount > 1000 -> review"
            assert second["house"]["text"] == 'terminal_id == "T-2" -> allow'

            # Deleted: version 3 holds one rule.
            _rule(page, "big").get_by_role("button", name="Delete").click()
            _save(page, 3)
            assert [r["name"] for r in _in_force(api)["rules"]] == ["house"]

            # Rolled back to the first version, as version 4.
            versions = page.locator("#rules-versions tbody tr")
            expect(versions).to_have_count(3)
            page.locator('#rules-versions tr[data-version="1"]').get_by_role(
                "button", name="Roll back"
            ).click()
            expect(page.locator("#rules-message")).to_contain_text(
                "version 1 are in force again, as version 4", timeout=ACTION_TIMEOUT_MS
            )
            rolled = _in_force(api)
            assert rolled["version"] == 4
            assert [r["text"] for r in rolled["rules"]] == [
                "amount > 1000 -> alert",
                'terminal_id == "T-1" -> allow',
            ]
            expect(_rule(page, "big")).to_be_visible()
            expect(page.locator('#rules-versions tr[data-version="4"]')).to_contain_text(
                re.compile("in force")
            )
            _a_review_in_the_feed(page, api)
        finally:
            page.close()
    RULES_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "rules.png", RULES_SCREENSHOT)
    assert problems == []
