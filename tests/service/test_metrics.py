"""`GET /metrics`: score and label traffic through the API, then read the series back."""

from __future__ import annotations

import math

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.learners import DEFAULT_LEARNER
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Series:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, /, **labels: str) -> float:
    return series[name, frozenset(labels.items())]


def label(index: int, *, is_fraud: bool) -> dict[str, object]:
    return {
        "transaction_id": f"tx-{index}",
        "is_fraud": is_fraud,
        "labelled_at": "2026-11-30T00:00:00Z",
        "source": "analyst",
    }


async def test_metrics_count_what_was_scored_learned_and_alerted() -> None:
    scored, learned = 9, 4
    async with api_client(alert_threshold=0.0) as (client, _):
        # One lone request and one batch: two scoring calls, two latency observations.
        assert (await client.post("/v1/score", json=transaction(0))).status_code == 200
        batch = [transaction(index) for index in range(1, scored)]
        assert (await client.post("/v1/score/batch", json=batch)).status_code == 200
        labels = [label(index, is_fraud=index % 2 == 0) for index in range(learned)]
        assert (await client.post("/v1/labels", json=labels)).json()["learned"] == learned
        # A repeated label teaches nothing and must not be counted again.
        assert (await client.post("/v1/labels", json=labels[0])).json()["repeated"] == 1

        series = await scrape(client)
        alerts = (await client.get("/v1/alerts", params={"limit": 1_000})).json()
        [model] = (await client.get("/v1/models")).json()["models"]

    assert value(series, "fraudstream_transactions_scored_total") == scored
    assert value(series, "fraudstream_labels_learned_total") == learned
    assert alerts
    assert value(series, "fraudstream_alerts_total") == len(alerts)
    assert value(series, "fraudstream_scoring_latency_seconds_count") == 2
    assert value(series, "fraudstream_scoring_latency_seconds_sum") > 0
    assert value(series, "fraudstream_dlq_records_total", reason="invalid") == 0
    assert value(series, "fraudstream_consumer_lag") == 0
    assert value(series, "fraudstream_label_backlog") == scored - learned
    info = {"name": model["name"], "version": model["version"], "role": "champion"}
    assert model["version"] == f"m000001+{learned}"
    assert value(series, "fraudstream_model_info", **info) == 1
    per_model = {"model": model["name"], "role": "champion"}
    assert value(
        series, "fraudstream_model_rolling_average_precision", **per_model
    ) == pytest.approx(model["rolling_average_precision"])
    card_precision = value(series, "fraudstream_model_rolling_card_precision_at_k", **per_model)
    assert 0 < card_precision == pytest.approx(model["rolling_card_precision_at_k"])


async def test_queued_transactions_are_counted_once_scored() -> None:
    async with api_client() as (client, app):
        queued = [transaction(index) for index in range(5)]
        assert (await client.post("/v1/transactions", json=queued)).status_code == 202
        await app.state.runtime.drain()
        series = await scrape(client)
    assert value(series, "fraudstream_transactions_scored_total") == 5
    assert value(series, "fraudstream_consumer_lag") == 0


async def test_each_app_counts_its_own_traffic() -> None:
    async with api_client() as (first, _), api_client() as (second, _):
        await first.post("/v1/score", json=transaction(1))
        assert value(await scrape(first), "fraudstream_transactions_scored_total") == 1
        assert value(await scrape(second), "fraudstream_transactions_scored_total") == 0


async def test_metrics_answer_before_the_model_has_seen_anything() -> None:
    async with api_client() as (client, _):
        series = await scrape(client)
    assert value(series, "fraudstream_transactions_scored_total") == 0
    assert value(series, "fraudstream_label_backlog") == 0
    assert math.isnan(
        value(
            series,
            "fraudstream_model_rolling_average_precision",
            model=DEFAULT_LEARNER,
            role="champion",
        )
    )
