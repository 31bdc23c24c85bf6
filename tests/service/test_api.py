"""Every endpoint through an ASGI client, on the embedded runtime."""

from __future__ import annotations

import pytest

from models.learners import DEFAULT_LEARNER
from service.responses import BatchScoreResponse, ScoreResponse
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio


async def test_score_returns_score_decision_threshold_version_reasons_and_latency() -> None:
    async with api_client() as (client, _):
        response = await client.post("/v1/score", json=transaction(1))
        assert response.status_code == 200
        body = response.json()
        assert body["transaction_id"] == "tx-1"
        assert 0.0 <= body["score"] <= 1.0
        assert body["decision"] in ("alert", "pass")
        assert body["threshold"] == 0.5
        assert body["model_version"] == "m000001+0"  # the first registered version, unchanged
        assert isinstance(body["reasons"], list)
        assert body["latency_ms"] >= 0
        # Served as pre-serialised JSON: the documented response model must still describe it.
        assert ScoreResponse.model_validate(body).transaction_id == "tx-1"


async def test_reasons_travel_in_the_documented_shape_once_the_model_has_learned() -> None:
    async with api_client() as (client, _):
        for index in range(6):
            await client.post("/v1/score", json=transaction(index, amount=10.0 + 100 * index))
            label = {
                "transaction_id": f"tx-{index}",
                "is_fraud": index >= 3,
                "labelled_at": "2026-11-30T00:00:00Z",
                "source": "analyst",
            }
            await client.post("/v1/labels", json=label)
        body = (await client.post("/v1/score", json=transaction(9, amount=900.0))).json()
        scored = ScoreResponse.model_validate(body)
        assert scored.reasons
        assert scored.reasons[0].contribution > 0


async def test_scoring_updates_feature_state_like_any_transaction() -> None:
    async with api_client() as (client, app):
        for index in range(3):
            await client.post("/v1/score", json=transaction(index * 7, card_id="same"))
        vector = app.state.runtime.detector.vector_of("tx-14")
        assert vector["card_tx_count_30d"] == 3.0


async def test_batch_scores_in_order_and_refuses_too_many() -> None:
    async with api_client(max_batch=3) as (client, _):
        response = await client.post("/v1/score/batch", json=[transaction(i) for i in range(3)])
        assert response.status_code == 200
        BatchScoreResponse.model_validate(response.json())
        assert [s["transaction_id"] for s in response.json()["scores"]] == [
            "tx-0",
            "tx-1",
            "tx-2",
        ]
        too_many = await client.post("/v1/score/batch", json=[transaction(i) for i in range(4)])
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["body"]


async def test_accepted_transactions_are_scored_and_alert_from_the_queue() -> None:
    async with api_client(alert_threshold=0.0) as (client, app):
        response = await client.post("/v1/transactions", json=[transaction(i) for i in range(5)])
        assert response.status_code == 202
        assert response.json()["accepted"] == 5
        await app.state.runtime.drain()
        alerts = (await client.get("/v1/alerts")).json()
        # Threshold 0: every card is alerted once per cooldown (5 cards here).
        assert {alert["transaction"]["card_id"] for alert in alerts} == {
            f"card-{i}" for i in range(5)
        }
        assert all(alert["threshold"] == 0.0 for alert in alerts)


async def test_labels_are_learned_and_unknown_ids_reported() -> None:
    async with api_client() as (client, _):
        await client.post("/v1/score", json=transaction(1))
        label = {
            "transaction_id": "tx-1",
            "is_fraud": True,
            "labelled_at": "2026-11-30T00:00:00Z",
            "source": "chargeback",
        }
        one = await client.post("/v1/labels", json=label)
        assert one.json() == {
            "learned": 1,
            "corrected": 0,
            "repeated": 0,
            "unknown": [],
            "refused": [],
            "statuses": ["learned"],
        }
        batch = await client.post(
            "/v1/labels", json=[label, {**label, "transaction_id": "never-seen"}]
        )
        assert batch.json() == {
            "learned": 0,
            "corrected": 0,
            "repeated": 1,
            "unknown": ["never-seen"],
            "refused": [],
            "statuses": ["repeated", "unknown"],
        }
        models = (await client.get("/v1/models")).json()["models"]
        assert models[0]["labels_learned"] == 1
        assert models[0]["version"] == "m000001+1"  # the first version and one label since


async def test_alerts_filter_by_card_and_time() -> None:
    async with api_client(alert_threshold=0.0) as (client, _):
        await client.post("/v1/score/batch", json=[transaction(i) for i in range(4)])
        by_card = (await client.get("/v1/alerts", params={"card_id": "card-2"})).json()
        assert [alert["transaction"]["card_id"] for alert in by_card] == ["card-2"]
        future = (await client.get("/v1/alerts", params={"since": "2999-01-01T00:00:00Z"})).json()
        assert future == []
        limited = (await client.get("/v1/alerts", params={"limit": 2})).json()
        assert len(limited) == 2


async def test_models_lists_the_champion_and_health_answers() -> None:
    async with api_client() as (client, _):
        models = (await client.get("/v1/models")).json()["models"]
        assert [(m["name"], m["role"]) for m in models] == [(DEFAULT_LEARNER, "champion")]
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_simulated_history_is_learned_before_ready_and_kept_in_the_offline_store() -> None:
    async with api_client(simulate_rate=10, simulate_customers=50, simulate_terminals=100) as (
        client,
        app,
    ):
        assert (await client.get("/readyz")).status_code == 200
        learned = app.state.runtime.detector.learner.labels_learned
        assert learned > 0
        assert app.state.runtime.offline.position == learned  # one row per label learned
        # The what-if has matured days to answer over from the first minute.
        whatif = (await client.get("/v1/whatif?days=7")).json()
        assert 0 < whatif["transactions"] < learned
        assert whatif["thresholds"]


async def test_scoring_answers_503_while_the_runtime_is_not_running() -> None:
    async with api_client() as (client, app):
        await app.state.runtime.stop()
        assert (await client.get("/readyz")).status_code == 503
        response = await client.post("/v1/score", json=transaction(1))
        assert response.status_code == 503
        assert "loading" in response.json()["detail"]
        assert (await client.get("/healthz")).status_code == 200
