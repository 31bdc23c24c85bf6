"""The dashboard in a real headless Chromium, against ``fraudstream serve --simulate``: the live
page, then the models panel's admin actions with API keys configured.

The browser is Debian's Chromium, from the ``browser`` fixture of `tests.browser`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import (
    BrowserContext,
    Locator,
    Page,
    expect,
)

from models.learners import DEFAULT_LEARNER
from pipelines.bench.server_process import serve
from service.auth import hash_key
from tests.browser import watched_page
from tests.pipelines.retrain.retrain_data import parquet_store

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
REPORTS = Path(__file__).resolve().parents[2] / "reports"
SCREENSHOT = REPORTS / "dashboard.png"
MODELS_SCREENSHOT = REPORTS / "dashboard-models.png"
BACKTEST_SCREENSHOT = REPORTS / "dashboard-backtest.png"
ALERT_TIMEOUT_MS = 60_000
QUALITY_TIMEOUT_MS = 20_000
ACTION_TIMEOUT_MS = 10_000

ADMIN_KEY = "dashboard-test-admin-key"
SCORER_KEY = "dashboard-test-scorer-key"
WRONG_KEY = "a-key-nobody-configured"
KEYED_SETTINGS = {
    **SETTINGS,
    "FRAUDSTREAM_API_KEYS": json.dumps(
        {hash_key(ADMIN_KEY): ["admin"], hash_key(SCORER_KEY): ["score"]}
    ),
    # Versions come from the page's buttons only: no periodic snapshot during the test.
    "FRAUDSTREAM_SNAPSHOT_EVERY_LABELS": "100000000",
    "FRAUDSTREAM_SNAPSHOT_EVERY": "1d",
}


def test_dashboard_shows_live_alerts_scores_and_the_model(
    browser: BrowserContext, tmp_path: Path
) -> None:
    problems: list[str] = []
    with serve(settings=SETTINGS) as server:
        page = watched_page(browser, problems)
        try:
            page.goto(f"{server.url}/")
            _assert_live_page(page)
            _judge_an_alert(page, server.url)
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

    expect(page.locator("#model-name")).to_have_text(DEFAULT_LEARNER)
    expect(page.locator("#model-version")).to_have_text(re.compile(r"^m\d{6}\+\d+$"))
    expect(page.locator("#score-chart rect.bar").first).to_be_visible()
    expect(page.locator("#score-chart line.threshold")).to_have_count(1)
    expect(page.locator("#rate-chart rect.rate").first).to_be_visible()
    # A line of three points at least: two samples with a figure, and the figure as of now.
    expect(page.locator("#quality-chart path.line.champion")).to_have_attribute(
        "d", re.compile(r"^M[\d.,]+(L[\d.,]+){2,}$"), timeout=QUALITY_TIMEOUT_MS
    )
    _assert_what_if(page)


def _assert_what_if(page: Page) -> None:
    """The what-if panel: a row per threshold, the one in force marked, precision drawn."""
    rows = page.locator("#whatif-table tbody tr")
    expect(rows).to_have_count(19, timeout=ALERT_TIMEOUT_MS)
    expect(page.locator("#whatif-table tr.in-force td").first).to_have_text("0.5")
    expect(page.locator("#whatif-chart path.line.precision")).to_have_attribute(
        "d", re.compile(r"^M[\d.,]+(L[\d.,]+){5,}$")
    )
    expect(page.locator("#whatif-note")).to_contain_text("labelled transactions")


BACKTEST_RULE = "amount > 100 and card_tx_count_1d >= 3 -> alert"


def test_backtest_panel_shows_a_draft_beside_the_model_and_names_a_bad_field(
    browser: BrowserContext, tmp_path: Path
) -> None:
    """Over a store of matured labels: the figures the API gives, refusals said in the panel."""
    parquet_store(tmp_path / "data" / "offline")
    problems: list[str] = []
    settings = {**KEYED_SETTINGS, "FRAUDSTREAM_DATA_DIR": str(tmp_path / "data")}
    # No traffic but the stored labels, which came a week late.
    settings.pop("FRAUDSTREAM_SIMULATE_RATE")
    settings["FRAUDSTREAM_LABEL_DELAY"] = "7d"
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as api:
        body = {"rule": BACKTEST_RULE, "days": 10}
        expected = api.post("/v1/rules/backtest", json=body, headers=admin).json()["overall"]
        page = watched_page(browser, problems, expected=[REFUSED])
        try:
            page.goto(f"{server.url}/")
            message = page.locator("#backtest-message")
            # A key without the admin role is refused, and the panel says so.
            _use_key(page, SCORER_KEY)
            _backtest(page, BACKTEST_RULE, 10)
            expect(message).to_contain_text("Refused (403")
            expect(page.locator("#backtest-results")).to_be_hidden()

            _use_key(page, ADMIN_KEY)
            _backtest(page, BACKTEST_RULE, 10)
            expect(page.locator("#backtest-results")).to_be_visible(timeout=ACTION_TIMEOUT_MS)
            expect(message).to_be_hidden()
            first = page.locator("#backtest-table tbody tr").first.locator("td")
            expect(first).to_have_text(
                [
                    "Alerts a day",
                    f"{expected['model']['alerts_per_day']:.1f}",
                    f"{expected['with_draft']['alerts_per_day']:.1f}",
                ]
            )
            added = expected["change"]["frauds_added"]
            assert added > 0
            expect(
                page.locator('#backtest-changes li[data-change="frauds-added"]')
            ).to_contain_text(f"{added} frauds added")
            expect(page.locator("#backtest-daily tbody tr")).to_have_count(10)
            expect(page.locator("#backtest-summary")).to_contain_text("the alert rule")
            page.locator("#backtest-panel").screenshot(path=tmp_path / "backtest.png")

            # A threshold is a number alone; a field the store does not keep is named.
            _backtest(page, "0.3", 10)
            expect(page.locator("#backtest-summary")).to_contain_text("with threshold 0.3")
            _backtest(page, 'country == "RU" -> alert', 10)
            expect(message).to_contain_text("Refused (422: rule: the offline store does not keep")
            expect(message).to_contain_text("'country'")
            expect(page.locator("#backtest-results")).to_be_hidden()
        finally:
            page.close()
    BACKTEST_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "backtest.png", BACKTEST_SCREENSHOT)
    # Chromium logs the refused draft's 422, which the panel said (checked above).
    assert [problem for problem in problems if "status of 422" not in problem] == []


def _backtest(page: Page, draft: str, days: int) -> None:
    page.fill("#backtest-draft", draft)
    page.fill("#backtest-days", str(days))
    page.get_by_role("button", name="Backtest").click()


def test_models_panel_snapshots_adds_a_challenger_rolls_back_and_retires(
    browser: BrowserContext, tmp_path: Path
) -> None:
    problems: list[str] = []
    settings = {**KEYED_SETTINGS, "FRAUDSTREAM_DATA_DIR": str(tmp_path / "data")}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as api:
        page = watched_page(browser, problems, expected=[REFUSED])
        try:
            page.goto(f"{server.url}/")
            _assert_refused_without_the_admin_key(page, api)
            _use_key(page, ADMIN_KEY)
            expect(page.locator("#models-message")).to_be_hidden()
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            expect(page.locator("#alert-feed tbody tr").first).to_be_visible(
                timeout=ALERT_TIMEOUT_MS
            )
            # The key is this tab's only: in sessionStorage, never in localStorage or the URL.
            assert page.evaluate("sessionStorage.getItem('fraudstream.apiKey')") == ADMIN_KEY
            assert page.evaluate("localStorage.length") == 0
            assert ADMIN_KEY not in page.url
            _snapshot_and_add_a_challenger(page)
            # Rolling back takes a confirmation in the row: the first click changes nothing.
            _row(page, "m000001").get_by_role("button", name="Roll back").click()
            expect(_row(page, "m000001")).to_contain_text("Roll back to m000001?")
            assert _listed(api)["champion_version"] == "m000002"
            page.locator("#models-panel").screenshot(path=tmp_path / "models.png")
            _confirm_the_rollback(page, api)
            _retire_the_challenger(page, api)
        finally:
            page.close()
    MODELS_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "models.png", MODELS_SCREENSHOT)
    assert problems == []


def _assert_refused_without_the_admin_key(page: Page, api: httpx.Client) -> None:
    message = page.locator("#models-message")
    # No key, then one nobody configured: 401 said in the panel, and nothing changes.
    expect(page.locator("#models-access")).to_contain_text("401")
    # The alerts and figures need a key too: the feed says so and shows none.
    expect(page.locator("#connection-text")).to_have_text("Needs a key the API knows (401)")
    expect(page.locator("#model-version")).to_have_text("needs a key")
    expect(page.locator("#alert-feed tbody tr")).to_have_count(0)
    _use_key(page, WRONG_KEY)
    expect(page.locator("#models-access")).to_contain_text("401: unknown API key")
    page.get_by_role("button", name="Snapshot now").click()
    expect(message).to_have_text("Snapshot refused (401: unknown API key)")
    assert _versions(api) == ["m000001"]
    # A known key without the admin role reads the models but changes nothing (403).
    _use_key(page, SCORER_KEY)
    expect(page.locator("#models-access")).to_be_hidden()
    expect(page.locator("#model-versions tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Snapshot now").click()
    expect(message).to_contain_text("refused (403: this API key does not have the 'admin' role)")
    assert _versions(api) == ["m000001"]


def _snapshot_and_add_a_challenger(page: Page) -> None:
    message = page.locator("#models-message")
    champion = page.locator('#model-versions tr[data-status="champion"]')
    expect(champion).to_have_attribute("data-version", "m000001")
    expect(champion.locator("button")).to_have_count(0)

    page.get_by_role("button", name="Snapshot now").click()
    expect(message).to_contain_text("Registered m000002 (on demand)", timeout=ACTION_TIMEOUT_MS)
    expect(champion).to_have_attribute("data-version", "m000002")
    expect(_row(page, "m000001").locator("td").nth(1)).to_have_text("registered")
    expect(_row(page, "m000001").get_by_role("button")).to_have_text(["Roll back"])

    page.select_option("#challenger-learner", "hoeffding")
    page.get_by_role("button", name="Add challenger").click()
    expect(message).to_contain_text(
        "m000003 (hoeffding) shadows the champion", timeout=ACTION_TIMEOUT_MS
    )
    shadow = page.locator('#serving-models tr[data-role="challenger"]')
    expect(shadow.locator("td").nth(1)).to_have_text("m000003")
    expect(shadow.locator("td").nth(3)).to_have_text("hoeffding")
    expect(_row(page, "m000003").get_by_role("button")).to_have_text(["Promote", "Retire"])
    # Judged on the labels that mature from now on, and drawn beside the champion.
    expect(shadow.locator("td").nth(4)).to_have_text(
        re.compile(r"^[01]\.\d{3}$"), timeout=QUALITY_TIMEOUT_MS
    )
    expect(page.locator('#quality-legend li[data-model="m000003"]')).to_be_visible()
    expect(page.locator('#quality-chart path.line.challenger[data-model="m000003"]')).to_have_count(
        1
    )
    _what_if_of_the_challenger(page)


def _what_if_of_the_challenger(page: Page) -> None:
    """The what-if offers the new challenger, over its own matured scores only: none yet, or
    (labels a simulated day late mature within seconds on a busy machine) fewer than the
    champion's, which hold the simulated history's."""
    thresholds = page.locator("#whatif-table tbody tr")
    note = page.locator("#whatif-note")
    expect(thresholds).to_have_count(19, timeout=ALERT_TIMEOUT_MS)
    expect(note).to_contain_text("labelled transactions")
    champion_labels = _labelled(note.inner_text())
    expect(page.locator('#whatif-model option[value="m000003"]')).to_have_text(
        "challenger m000003 (hoeffding)"
    )
    page.select_option("#whatif-model", "m000003")
    expect(note).not_to_have_text(re.compile(rf"over {champion_labels:,} labelled"))
    if "no matured labels yet" in note.inner_text():
        expect(thresholds).to_have_count(0)
    else:
        assert _labelled(note.inner_text()) < champion_labels
    page.select_option("#whatif-model", "")
    expect(thresholds).to_have_count(19)


def _labelled(note: str) -> int:
    """The labelled transactions a what-if note says it is over."""
    found = re.search(r"over ([\d,]+) labelled transactions", note)
    assert found is not None, note
    return int(found.group(1).replace(",", ""))


def _confirm_the_rollback(page: Page, api: httpx.Client) -> None:
    _row(page, "m000001").get_by_role("button", name="Confirm").click()
    expect(page.locator("#models-message")).to_contain_text(
        "m000001 serves from now on", timeout=ACTION_TIMEOUT_MS
    )
    champion = page.locator('#model-versions tr[data-status="champion"]')
    expect(champion).to_have_attribute("data-version", "m000001")
    expect(page.locator("#model-versions")).to_have_attribute("data-champion", "m000001")
    expect(page.locator('#serving-models tr[data-role="champion"] td').nth(2)).to_have_text(
        re.compile(r"^m000001\+\d+$")
    )
    expect(page.locator("#model-version")).to_have_text(re.compile(r"^m000001\+\d+$"))
    listed = _listed(api)
    assert listed["champion_version"] == "m000001"
    assert listed["models"][0]["version"].startswith("m000001+")
    # A version newer than the champion is promoted, not rolled back to.
    expect(_row(page, "m000002").get_by_role("button")).to_have_text(["Promote"])


def _retire_the_challenger(page: Page, api: httpx.Client) -> None:
    _row(page, "m000003").get_by_role("button", name="Retire").click()
    _row(page, "m000003").get_by_role("button", name="Confirm").click()
    expect(page.locator("#models-message")).to_contain_text(
        "m000003 is retired", timeout=ACTION_TIMEOUT_MS
    )
    expect(_row(page, "m000003")).to_have_count(0)
    expect(page.locator('#serving-models tr[data-role="challenger"]')).to_have_count(0)
    assert [model["role"] for model in _listed(api)["models"]] == ["champion"]
    assert _versions(api) == ["m000002", "m000001"]


def _use_key(page: Page, key: str) -> None:
    page.fill("#admin-key", key)
    page.get_by_role("button", name="Use key").click()


def _row(page: Page, version: str) -> Locator:
    return page.locator(f'#model-versions tbody tr[data-version="{version}"]')


def _listed(api: httpx.Client) -> dict[str, Any]:
    listed = api.get("/v1/models", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    listed.raise_for_status()
    body: dict[str, Any] = listed.json()
    return body


def _versions(api: httpx.Client) -> list[str]:
    return [version["version"] for version in _listed(api)["versions"]]


def _judge_an_alert(page: Page, url: str) -> None:
    """An analyst marks an alert fraud from its row: the API learns it and the row says so."""
    rows = page.locator("#alert-feed tbody tr.alert-row")
    transaction_id = rows.first.get_attribute("data-transaction-id")
    assert transaction_id
    page.get_by_role("button", name=f"Fraud: transaction {transaction_id}").click()
    badge = page.locator(f'#alert-feed tr[data-transaction-id="{transaction_id}"] .verdict-badge')
    # The verdict is learned by a server that is scoring 50 simulated payments a second: on a
    # machine busy with the rest of the suite its answer can take as long as a live alert.
    expect(badge).to_have_text("fraud", timeout=ALERT_TIMEOUT_MS)
    alerts = httpx.get(f"{url}/v1/alerts", params={"limit": 1_000}).json()
    verdicts = {a["transaction"]["transaction_id"]: a["verdict"] for a in alerts}
    assert verdicts[transaction_id] == "fraud"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'fraudstream_alert_verdicts_total{verdict="fraud"} 1.0' in metrics


def _assert_alert_row(page: Page) -> None:
    cells = page.locator("#alert-feed tbody tr.alert-row").first.locator("td")
    expect(cells).to_have_count(7)
    expect(cells.nth(1)).not_to_be_empty()  # card
    expect(cells.nth(3)).to_have_text(re.compile(r"\d+\.\d\d"))  # amount
    expect(cells.nth(4)).to_have_text(re.compile(r"^(0\.\d{3}|1\.000)$"))  # score


# How Chromium logs a response it was refused; the page says so itself, in the panel.
REFUSED = re.compile(r"^Failed to load resource: the server responded with a status of 40[13]\b")


DRIFT_SETTINGS = {
    **SETTINGS,
    # The simulated history is ten days: windows of two days, no gap or warm-up, so the
    # history replayed at start-up already gives reports.
    "FRAUDSTREAM_DRIFT_REFERENCE_DAYS": "2",
    "FRAUDSTREAM_DRIFT_GAP_DAYS": "0",
    "FRAUDSTREAM_DRIFT_WARMUP_DAYS": "0",
    "FRAUDSTREAM_DRIFT_CELL_FEATURES": "2",
}
DRIFT_SCREENSHOT = REPORTS / "dashboard-drift.png"


def test_drift_panel_shows_the_latest_report_as_the_api_gives_it(
    browser: BrowserContext, tmp_path: Path
) -> None:
    problems: list[str] = []
    with serve(settings=DRIFT_SETTINGS) as server:
        page = watched_page(browser, problems)
        try:
            page.goto(f"{server.url}/")
            features = page.locator("#drift-features tbody tr")
            expect(features.first).to_be_visible(timeout=ALERT_TIMEOUT_MS)
            answer = httpx.get(f"{server.url}/v1/drift", timeout=10).json()
            assert answer["day"] is not None
            # The report is the same unless a simulated day ended in between.
            if httpx.get(f"{server.url}/v1/drift", timeout=10).json()["day"] == answer["day"]:
                expect(page.locator("#drift-note")).to_contain_text(answer["day"])
            expect(features).to_have_count(len(answer["features"]) + 1)
            expect(features.first.locator("td").first).to_have_text("score")
            badge = page.locator("#drift-alarm")
            expect(badge).to_have_text(re.compile(r"^(ALARM|quiet)$"))
            state = "on" if badge.text_content() == "ALARM" else "off"
            expect(badge).to_have_attribute("data-alarm", state)
            expect(page.locator("#drift-cells tbody tr")).to_have_count(len(answer["cells"]))
            # The novel card-days, as the API counts them.
            novelty = page.locator("#drift-novelty")
            expect(novelty).to_contain_text(re.compile(r"novel card-days: [\d,]+ of [\d,]+"))
            if httpx.get(f"{server.url}/v1/drift", timeout=10).json()["day"] == answer["day"]:
                novel = f"novel card-days: {answer['novel_card_days']:,} of {answer['card_days']:,}"
                expect(novelty).to_contain_text(novel)
            page.locator("#drift-panel").screenshot(path=tmp_path / "drift.png")
        finally:
            page.close()
    DRIFT_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "drift.png", DRIFT_SCREENSHOT)
    assert problems == []
