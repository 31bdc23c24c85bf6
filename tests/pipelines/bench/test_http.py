"""`fraudstream bench http`: a short real run, and the constant endpoint only when asked for.

Figures are printed, never asserted on: this machine is shared and its speed drifts. What is
asserted is that the run measured something, without errors, and cleaned up its server.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from models.schemas import LabelSource, Transaction
from pipelines.bench.http import (
    TRAINING_FRAUD_AMOUNT,
    HttpBenchOptions,
    TransactionBodies,
    bench_http,
    percentile,
    training_labels,
)
from service.app import create_app
from service.settings import Settings


def test_a_short_run_against_its_own_server_reports_sane_figures() -> None:
    options = HttpBenchOptions(
        clients=4,
        seconds=1.0,
        warm_up=0.5,
        batch_seconds=1.0,
        in_process_transactions=2_000,
        training_transactions=2_500,
    )
    result = bench_http(options)
    assert result.labels_learned == 2_500, "the server learned every label it was taught"
    assert result.baseline is not None, "the bench starts its server with the constant endpoint"
    for workload in (result.score, result.baseline, result.batch):
        assert workload.requests > 0, workload.name
        assert workload.errors == 0, workload.name
        assert workload.p50_ms <= workload.p95_ms <= workload.p99_ms, workload.name
        assert (workload.server_ms_per_request or 0) > 0, workload.name
    assert result.batch.transactions_per_request == 1_000
    assert result.score_over_baseline is not None
    assert result.score_over_baseline > 0
    assert result.in_process.single > 0
    assert result.in_process.batched > 0
    assert result.server_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(result.server_pid, 0)


def test_bodies_are_distinct_valid_transactions_in_increasing_time() -> None:
    bodies = TransactionBodies(cards=50, terminals=100, start=datetime(2026, 1, 1, tzinfo=UTC))
    singles = [Transaction.model_validate_json(bodies.one()) for _ in range(20)]
    batch = [Transaction.model_validate(item) for item in orjson.loads(bodies.many(20))]
    stream = singles + batch
    assert len({tx.transaction_id for tx in stream}) == len(stream)
    times = [tx.timestamp for tx in stream]
    assert times == sorted(times)
    assert all(tx.amount > 0 and tx.currency == "EUR" for tx in stream)
    assert b'Z"' in bodies.one()


def test_the_taught_labels_are_chargebacks_after_each_payment_fraud_above_the_amount() -> None:
    bodies = TransactionBodies(cards=50, terminals=100, start=datetime(2026, 1, 1, tzinfo=UTC))
    stream = [Transaction.model_validate(item) for item in orjson.loads(bodies.many(2_000))]
    labels = training_labels(stream)
    assert [label.transaction_id for label in labels] == [tx.transaction_id for tx in stream]
    assert all(label.labelled_at > tx.timestamp for label, tx in zip(labels, stream, strict=True))
    frauds = [tx.amount for tx, label in zip(stream, labels, strict=True) if label.is_fraud]
    assert frauds
    assert min(frauds) > TRAINING_FRAUD_AMOUNT
    assert 0.005 < len(frauds) / len(stream) < 0.05
    assert {label.source for label in labels} == {LabelSource.CHARGEBACK}


def test_percentiles_are_observed_values_in_order() -> None:
    ordered = [float(value) for value in range(1, 101)]
    assert [percentile(ordered, q) for q in (0.5, 0.95, 0.99)] == [50.0, 95.0, 99.0]
    assert percentile([7.0], 0.99) == 7.0


def test_options_refuse_an_empty_load() -> None:
    with pytest.raises(ValueError, match="clients"):
        HttpBenchOptions(clients=0)
    with pytest.raises(ValueError, match="training_transactions"):
        HttpBenchOptions(training_transactions=-1)
    assert HttpBenchOptions(training_transactions=0).training_transactions == 0


TRANSACTION = {
    "transaction_id": "tx-1",
    "timestamp": "2026-11-29T12:00:00Z",
    "card_id": "card-1",
    "terminal_id": "term-1",
    "amount": 42.5,
    "currency": "EUR",
}


async def _post_constant(settings: Settings, body: object) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post("/v1/bench/constant", json=body)


@pytest.mark.anyio
async def test_the_constant_endpoint_is_absent_by_default(tmp_path: Path) -> None:
    response = await _post_constant(Settings(bench_endpoints=False, data_dir=tmp_path), TRANSACTION)
    assert response.status_code == 404


@pytest.mark.anyio
async def test_the_constant_endpoint_validates_like_score_and_answers_its_shape(
    tmp_path: Path,
) -> None:
    settings = Settings(bench_endpoints=True, data_dir=tmp_path)
    response = await _post_constant(settings, TRANSACTION)
    assert response.status_code == 200
    assert response.json()["transaction_id"] == "tx-1"
    assert set(response.json()) >= {"score", "model_version", "decision", "latency_ms"}
    invalid = await _post_constant(settings, {**TRANSACTION, "amount": -1})
    assert invalid.status_code == 422
