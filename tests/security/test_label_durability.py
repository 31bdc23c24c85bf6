"""No acknowledged label is lost: a real ``fraudstream serve`` killed (SIGKILL) or stopped
(SIGTERM) after answering labels ``learned`` serves, once restarted on the same data directory,
a model that learned every one of them exactly once and scores as one that never stopped."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from models.detector import FraudDetector
from models.schemas import Label, Transaction
from pipelines.bench.server_process import ServerProcess, serve
from pipelines.stream.scoring_batch import score_batch
from service.bootstrap import build_detector
from service.settings import Settings

SECRET = "durability-test-key-of-at-least-32-bytes"
START = datetime(2026, 11, 2, tzinfo=UTC)
BATCH = 100
"""Labels per request: ten requests make the thousand acknowledged labels."""


def _transaction(index: int, card: str, terminal: str) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{index}",
        "timestamp": (START + timedelta(minutes=index)).isoformat(),
        "card_id": card,
        "terminal_id": terminal,
        "amount": round(5.0 + (index * 37) % 400 + (250.0 if index % 7 == 0 else 0.0), 2),
        "currency": "EUR",
    }


def _before(indexes: range) -> list[dict[str, Any]]:
    """Transactions on the cards and terminals the probes use."""
    return [_transaction(i, f"card-{i % 40}", f"term-{i % 15}") for i in indexes]


def _after(indexes: range) -> list[dict[str, Any]]:
    """Transactions scored after the snapshot, on cards and terminals of their own: their
    windows are not in the saved state, and the probes never read them."""
    return [_transaction(i, f"late-card-{i % 20}", f"late-term-{i % 10}") for i in indexes]


def _label(index: int) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{index}",
        "is_fraud": index % 7 == 0,
        "labelled_at": (START + timedelta(days=2, minutes=index)).isoformat(),
        "source": "chargeback",
    }


PROBES = _before(range(5_000, 5_030))
LABELLED = range(1_000)


@contextmanager
def _server(data_dir: Path) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    settings = {"FRAUDSTREAM_DATA_DIR": str(data_dir), "FRAUDSTREAM_SECRET_KEY": SECRET}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as client:
        yield server, client


def _score(client: httpx.Client, transactions: Sequence[dict[str, Any]]) -> list[float]:
    answer = client.post("/v1/score/batch", json=list(transactions))
    assert answer.status_code == 200, answer.text
    return [score["score"] for score in answer.json()["scores"]]


def _acknowledge(client: httpx.Client, indexes: range) -> None:
    for start in range(indexes.start, indexes.stop, BATCH):
        answer = client.post("/v1/labels", json=[_label(i) for i in range(start, start + BATCH)])
        assert answer.status_code == 200, answer.text
        assert answer.json()["learned"] == BATCH


def _champion(client: httpx.Client) -> dict[str, Any]:
    [champion] = client.get("/v1/models").json()["models"]
    return dict(champion)


def _assert_every_label_is_in_the_model(client: httpx.Client) -> None:
    assert _champion(client)["labels_learned"] == len(LABELLED)  # each counted exactly once
    for index in LABELLED:
        audit = client.get(f"/v1/audit/tx-{index}")
        assert audit.status_code == 200, audit.text
        assert audit.json()["label"] is (index % 7 == 0), index


def _reference(scored: Sequence[Sequence[dict[str, Any]]], tmp_path: Path) -> list[float]:
    """The probes' scores from a detector that scored and learned the same, never stopping."""
    settings = Settings(data_dir=tmp_path / "reference", secret_key=SecretStr(SECRET))
    detector: FraudDetector = build_detector(settings)
    for batch in scored:
        score_batch(detector, [Transaction.model_validate(tx) for tx in batch])
    for start in range(LABELLED.start, LABELLED.stop, BATCH):
        labels = [Label.model_validate(_label(i)) for i in range(start, start + BATCH)]
        assert detector.learn(labels).learned == BATCH
    probes = [Transaction.model_validate(tx) for tx in PROBES]
    return [result.score for result in score_batch(detector, probes).scored]


def test_labels_acknowledged_before_a_kill_are_learned_once_after_restart(
    tmp_path: Path,
) -> None:
    before, after = _before(range(800)), _after(range(800, 1_000))
    with _server(tmp_path) as (server, client):
        _score(client, before)
        assert client.post("/v1/models/snapshots").status_code == 201
        _score(client, after)
        _acknowledge(client, LABELLED)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)  # no shutdown, no final snapshot

    with _server(tmp_path) as (server, client):
        _assert_every_label_is_in_the_model(client)
        recovered = _score(client, PROBES)
        assert recovered == _reference([before, after], tmp_path)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)  # once more, right after the recovery

    with _server(tmp_path) as (_, client):
        _assert_every_label_is_in_the_model(client)  # not learned a second time
        assert _score(client, PROBES) == recovered
        again = client.post("/v1/labels", json=[_label(i) for i in range(BATCH)]).json()
        assert (again["learned"], again["repeated"]) == (0, BATCH)


def test_labels_acknowledged_before_a_clean_stop_are_in_the_final_snapshot(
    tmp_path: Path,
) -> None:
    scored = _before(range(1_000))
    with _server(tmp_path) as (_, client):
        _score(client, scored)
        _acknowledge(client, LABELLED)
        at_stop = _champion(client)["version"]
    # Leaving the block stops the server with SIGTERM: the lifespan takes the final snapshot.

    with _server(tmp_path) as (_, client):
        champion = _champion(client)
        assert champion["version"].endswith("+0")
        assert champion["version"] != at_stop
        _assert_every_label_is_in_the_model(client)
        assert _score(client, PROBES) == _reference([scored], tmp_path)
        stop = client.get(f"/v1/models/{champion['version'].split('+')[0]}").json()
        assert stop["reason"] == "stop"
