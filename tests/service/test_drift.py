"""`GET /v1/drift`, the drift gauges of `GET /metrics` and the alarm in the models' events,
in embedded mode, from traffic scored through the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.service.client import api_client
from tests.service.test_metrics import scrape, value

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 1, tzinfo=UTC)
DRIFT = {
    "drift_reference_days": 2,
    "drift_gap_days": 0,
    "drift_warmup_days": 0,
    "drift_cell_features": 2,
    "drift_min_cards": 5,
}


def day_of_traffic(rng: np.random.Generator, day: int, crowd: int = 0) -> list[dict[str, Any]]:
    """A quiet day of 200 payments by 80 cards in the afternoon; plus ``crowd`` new cards
    paying a few cents three times each at 2 a.m."""
    midnight = START + timedelta(days=day)
    bodies = [
        {
            "transaction_id": f"d{day}-{i}",
            "timestamp": (midnight + timedelta(hours=12, seconds=int(rng.integers(0, 18_000))))
            .isoformat()
            .replace("+00:00", "Z"),
            "card_id": f"card-{rng.integers(0, 80)}",
            "terminal_id": f"term-{rng.integers(0, 40)}",
            "amount": round(float(rng.uniform(10, 100)), 2),
            "currency": "EUR",
        }
        for i in range(200)
    ]
    bodies += [
        {
            "transaction_id": f"d{day}-new-{i}",
            "timestamp": (midnight + timedelta(hours=2, minutes=i))
            .isoformat()
            .replace("+00:00", "Z"),
            "card_id": f"stolen-{i // 3}",
            "terminal_id": f"far-{i}",
            "amount": 0.5 + (i % 3) / 10,
            "currency": "EUR",
        }
        for i in range(crowd * 3)
    ]
    return sorted(bodies, key=lambda body: body["timestamp"])


async def test_a_crowd_of_new_cards_raises_the_alarm_in_the_route_metrics_and_events() -> None:
    rng = np.random.default_rng(0)
    days = [
        day_of_traffic(rng, 0),
        day_of_traffic(rng, 1),
        day_of_traffic(rng, 2, crowd=20),
        day_of_traffic(rng, 3),
    ]
    async with api_client(**DRIFT) as (client, _):
        before = (await client.get("/v1/drift")).json()
        assert before["watched"]
        assert before["day"] is None
        assert not before["alarm"]
        for bodies in days:
            response = await client.post("/v1/score/batch", json=bodies)
            assert response.status_code == 200
        # The day is compared in a background task, off the event loop.
        for _ in range(300):
            drift = (await client.get("/v1/drift")).json()
            if drift["day"] is not None:
                break
            await asyncio.sleep(0.1)
        series = await scrape(client)
        events = (await client.get("/v1/models/events")).json()

    assert drift["day"] == "2026-11-03"
    assert (drift["reference_start"], drift["reference_end"]) == ("2026-11-01", "2026-11-02")
    assert drift["transactions"] == 260
    assert drift["alarm"]
    assert (drift["threshold"], drift["novelty_threshold"]) == (4.0, 2.0)
    top = drift["cells"][0]
    assert top["cards"] >= 20
    assert top["surprise"] > 4.0
    assert value(series, "fraudstream_drift_alarm") == 1.0
    assert value(series, "fraudstream_drift_surprise") == pytest.approx(top["surprise"])
    # The novelty figures of the day: its cards (the afternoon's and the 20 stolen ones).
    # The reference has no night payment at all, and a forest does not extrapolate past its
    # reference: here the crowded cell raises the alarm.
    assert drift["card_days"] == len({b["card_id"] for b in days[2]})
    assert drift["novelty_expected"] == pytest.approx(1e-4 * drift["card_days"])
    assert 0 <= drift["novel_card_days"] <= drift["card_days"]
    assert value(series, "fraudstream_drift_novelty_surprise") == pytest.approx(
        drift["novelty_surprise"]
    )

    # The amount's PSI, computed apart from the service from the amounts sent.
    reference = pd.Series([b["amount"] for bodies in days[:2] for b in bodies])
    recent = pd.Series([b["amount"] for b in days[2]])
    edges = [-np.inf, *np.unique(np.quantile(reference, [0.05, 0.25, 0.5, 0.75, 0.95])), np.inf]
    p = pd.cut(reference, edges, right=False).value_counts(sort=False)
    q = pd.cut(recent, edges, right=False).value_counts(sort=False)
    p_share, q_share = (p / p.sum()).clip(lower=1e-4), (q / q.sum()).clip(lower=1e-4)
    amount_psi = float(((q_share - p_share) * np.log(q_share / p_share)).sum())
    by_feature = {f["feature"]: f["psi"] for f in drift["features"]}
    assert by_feature["amount"] == pytest.approx(amount_psi)
    assert value(series, "fraudstream_drift_psi", feature="amount") == pytest.approx(amount_psi)
    assert "is_weekend" not in by_feature
    assert not any(name.startswith("terminal_fraud_rate") for name in by_feature)

    raised = [event for event in events if event["event"] == "drift_alarm_raised"]
    assert len(raised) == 1
    assert raised[0]["detail"].startswith("2026-11-03: ")


async def test_drift_off_answers_unwatched() -> None:
    async with api_client(drift_watch=False) as (client, _):
        drift = (await client.get("/v1/drift")).json()
        series = await scrape(client)
    assert drift == {
        "watched": False,
        "alarm": False,
        "threshold": None,
        "day": None,
        "reference_start": None,
        "reference_end": None,
        "transactions": 0,
        "score_psi": None,
        "features": [],
        "cells": [],
        "novelty_threshold": None,
        "card_days": 0,
        "novel_card_days": None,
        "novelty_expected": None,
        "novelty_surprise": None,
    }
    assert not any(name.startswith("fraudstream_drift") for name, _ in series)
