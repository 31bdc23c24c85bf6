"""An analyst's verdict on an alert: learned at once, shown with the alert, counted apart."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.runtime.embedded import EmbeddedRuntime
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio


def _runtime(app: Any) -> EmbeddedRuntime:
    runtime: EmbeddedRuntime = app.state.runtime
    return runtime


def _verdicts_metric(page: str, verdict: str) -> float:
    prefix = f'fraudstream_alert_verdicts_total{{verdict="{verdict}"}} '
    return float(next(line for line in page.splitlines() if line.startswith(prefix))[len(prefix) :])


async def test_a_verdict_is_learned_at_once_and_shown_with_its_alert() -> None:
    async with api_client(alert_threshold=0.0) as (client, app):
        runtime = _runtime(app)
        alerted = (await client.post("/v1/score", json=transaction(1))).json()
        assert alerted["decision"] == "alert"
        learned_before = runtime.detector.learner.labels_learned

        answer = await client.post("/v1/alerts/tx-1/verdict", json={"is_fraud": True})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"transaction_id": "tx-1", "verdict": "fraud", "status": "learned"}
        assert runtime.detector.learner.labels_learned == learned_before + 1

        shown = (await client.get("/v1/alerts")).json()
        assert [(a["transaction"]["transaction_id"], a["verdict"]) for a in shown] == [
            ("tx-1", "fraud")
        ]
        page = (await client.get("/metrics")).text
        assert _verdicts_metric(page, "fraud") == 1.0
        assert _verdicts_metric(page, "legitimate") == 0.0

        # The analyst changes their mind once; a second reversal is refused and logged.
        reversed_ = await client.post("/v1/alerts/tx-1/verdict", json={"is_fraud": False})
        assert reversed_.json()["status"] == "corrected"
        again = await client.post("/v1/alerts/tx-1/verdict", json={"is_fraud": True})
        assert again.json()["status"] == "refused"
        shown = (await client.get("/v1/alerts")).json()
        assert shown[0]["verdict"] == "legitimate"


async def test_an_alert_not_kept_is_404_naming_the_id_and_a_bad_body_422() -> None:
    async with api_client(alert_threshold=0.0) as (client, _):
        missing = await client.post("/v1/alerts/never-seen/verdict", json={"is_fraud": True})
        assert missing.status_code == 404
        assert "never-seen" in missing.json()["detail"]
        assert "POST /v1/labels" in missing.json()["detail"]

        await client.post("/v1/score", json=transaction(2))
        for body, field in (({"is_fraud": "yes"}, "is_fraud"), ({}, "is_fraud")):
            bad = await client.post("/v1/alerts/tx-2/verdict", json=body)
            assert bad.status_code == 422, bad.text
            assert field in bad.text
        extra = await client.post("/v1/alerts/tx-2/verdict", json={"is_fraud": True, "x": 1})
        assert extra.status_code == 422
        assert (await client.get("/v1/alerts")).json()[0]["verdict"] is None
