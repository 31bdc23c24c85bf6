"""The dashboard through an ASGI client: the page, its static files and the figures it polls."""

from __future__ import annotations

import re
from typing import Any

import pytest

from models.learners import DEFAULT_LEARNER, RECIPES
from pipelines.runtime.embedded import EmbeddedRuntime
from service.responses import DashboardResponse
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio


async def test_the_page_is_html_that_names_the_alert_stream_and_loads_its_own_files() -> None:
    async with api_client() as (client, _):
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        html = page.text
        assert 'data-stream-url="/v1/alerts/stream"' in html
        assert 'data-alerts-url="/v1/alerts"' in html
        assert 'data-dashboard-url="/v1/dashboard"' in html
        assert 'data-models-url="/v1/models"' in html
        assert 'data-whatif-url="/v1/whatif"' in html
        assert 'data-backtest-url="/v1/rules/backtest"' in html
        # The challenger menu offers every learner recipe, and only those.
        menu = html[html.index('<select id="challenger-learner">') :]
        menu = menu[: menu.index("</select>")]
        assert re.findall(r'<option value="([a-z_]+)"', menu) == list(RECIPES)
        assert 'data-rules-url="/v1/rules"' in html
        for asset, media_type in [
            ("/static/dashboard.js", "text/javascript"),
            ("/static/models.js", "text/javascript"),
            ("/static/whatif.js", "text/javascript"),
            ("/static/backtest.js", "text/javascript"),
            ("/static/rules.js", "text/javascript"),
            ("/static/dashboard.css", "text/css"),
            ("/static/favicon.svg", "image/svg+xml"),
        ]:
            assert asset in html
            served = await client.get(asset)
            assert served.status_code == 200
            assert served.headers["content-type"].startswith(media_type)
        script = (await client.get("/static/dashboard.js")).text
        assert "EventSource" in script
        assert '"alert"' in script
        # What both modules import is served too.
        assert 'from "./shared.js"' in script
        shared = await client.get("/static/shared.js")
        assert shared.status_code == 200
        assert shared.headers["content-type"].startswith("text/javascript")


async def test_dashboard_figures_have_the_documented_shape() -> None:
    async with api_client(alert_threshold=0.0) as (client, _):
        batch = [transaction(index) for index in range(7)]
        assert (await client.post("/v1/score/batch", json=batch)).status_code == 200
        response = await client.get("/v1/dashboard")
        assert response.status_code == 200
        body = response.json()
        [model] = (await client.get("/v1/models")).json()["models"]

    assert set(body) == {
        "at",
        "transactions_scored",
        "score_distribution",
        "alert_rate",
        "models",
    }
    DashboardResponse.model_validate(body)
    assert body["transactions_scored"] == 7
    distribution = body["score_distribution"]
    assert set(distribution) == {"scores", "threshold", "bins", "above_threshold"}
    assert distribution["scores"] == 7
    assert distribution["threshold"] == 0.0
    assert len(distribution["bins"]) == 20
    assert sum(b["count"] for b in distribution["bins"]) == 7
    # At threshold 0 every score above 0 alerts, and each of the seven did (see the rate).
    assert sum(b["above_threshold"] for b in distribution["bins"]) == 7
    assert distribution["above_threshold"] == 7
    rate = body["alert_rate"]
    assert set(rate) == {"per_minute", "observed_minutes", "total", "minutes"}
    assert 0 < rate["observed_minutes"] < 1
    assert rate["total"] == 7  # seven cards, no cooldown reached, threshold 0
    assert len(rate["minutes"]) == 15
    assert rate["minutes"][-1]["alerts"] == 7
    assert rate["minutes"][0]["alerts"] is None  # the service is seconds old
    [live] = body["models"]
    assert set(live) == {
        "name",
        "version",
        "role",
        "learner",
        "labels_learned",
        "matured_labels",
        "rolling_average_precision",
        "history",
    }
    assert (live["name"], live["version"]) == (model["name"], model["version"])
    assert (live["role"], live["learner"]) == ("champion", DEFAULT_LEARNER)
    assert live["rolling_average_precision"] is None  # no label yet: null, not NaN
    # The sampler takes its first sample as soon as the runtime is ready.
    assert [sample["rolling_average_precision"] for sample in live["history"]] == [None]


async def test_challengers_are_drawn_beside_the_champion_from_when_they_began_shadowing() -> None:
    async with api_client() as (client, app):
        runtime: EmbeddedRuntime = app.state.runtime
        created = await client.post("/v1/models/challengers", json={"learner": "hoeffding"})
        challenger = created.json()["version"]
        batch = [transaction(index) for index in range(20)]
        assert (await client.post("/v1/score/batch", json=batch)).status_code == 200
        labels = [_label(index, is_fraud=index % 4 == 0) for index in range(20)]
        assert (await client.post("/v1/labels", json=labels)).status_code == 200
        runtime.sample_quality()
        body = (await client.get("/v1/dashboard")).json()
        listed = (await client.get("/v1/models")).json()["models"]
        assert (await client.delete(f"/v1/models/{challenger}")).status_code == 204
        after = (await client.get("/v1/dashboard")).json()

    def serving(models: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(model["name"], model["role"], model["version"]) for model in models]

    assert serving(body["models"]) == serving(listed)
    champion, shadow = body["models"]
    assert (shadow["name"], shadow["role"], shadow["learner"]) == (
        challenger,
        "challenger",
        "hoeffding",
    )
    assert shadow["matured_labels"] == 20
    assert shadow["rolling_average_precision"] is not None
    # The champion was sampled at start-up too; the challenger only since it began shadowing.
    assert len(champion["history"]) == 2
    [sample] = shadow["history"]
    assert sample["rolling_average_precision"] == shadow["rolling_average_precision"]
    assert sample["at"] == champion["history"][-1]["at"]
    [alone] = after["models"]  # retired: no longer drawn
    assert alone["role"] == "champion"


def _label(index: int, *, is_fraud: bool) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{index}",
        "is_fraud": is_fraud,
        "labelled_at": "2026-11-30T00:00:00Z",
        "source": "chargeback",
    }


async def test_dashboard_figures_wait_for_the_model_like_the_scoring_endpoints() -> None:
    async with api_client() as (client, app):
        await app.state.runtime.stop()
        response = await client.get("/v1/dashboard")
        assert response.status_code == 503
        assert (await client.get("/")).status_code == 200
