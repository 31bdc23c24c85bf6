"""The worker's batch path without clients: the steps the worker and `bench stream` share."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.idempotency import ConflictingRepeatError
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.state import WindowSpec
from pipelines.bench.stream.rates import consumed_records
from pipelines.stream.dead_letters import read_dead_letter_headers
from pipelines.stream.kafka_clients import OutgoingRecord
from pipelines.stream.scoring_batch import (
    MemoryAlertMarks,
    process_records,
    score_batch,
    undelivered_alerts,
)
from pipelines.stream.topics import Topics
from tests.builders import make_tx

TOPICS = Topics.with_prefix("test.")
RAISED_AT = datetime(2018, 5, 1, tzinfo=UTC)


def detector(threshold: float) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        OnlineLearner("logistic"),
        alerting=AlertPolicy(AlertPolicyConfig(threshold=threshold)),
    )


def test_records_in_give_scores_alerts_and_dead_letters_out_in_that_order() -> None:
    transactions = [make_tx(i, hours=i, card=f"c{i % 2}") for i in range(4)]
    produced = [
        OutgoingRecord(TOPICS.transactions, tx.card_id.encode(), tx.model_dump_json().encode())
        for tx in transactions
    ]
    produced.insert(2, OutgoingRecord(TOPICS.transactions, b"c9", b"not json"))
    records = consumed_records(produced, partitions=3)
    marks = MemoryAlertMarks()
    # Threshold 0: every score alerts, but each card once per cooldown.
    out = process_records(
        records, detector(0.0), marks, TOPICS, max_record_bytes=1_000, raised_at=RAISED_AT
    )

    assert [record.topic for record in out] == [TOPICS.scores] * 4 + [TOPICS.alerts] * 2 + [
        TOPICS.dlq
    ]
    scores = [orjson.loads(record.value) for record in out[:4]]
    assert [score["transaction_id"] for score in scores] == ["t0", "t1", "t2", "t3"]
    alerted = [orjson.loads(record.value)["transaction"]["transaction_id"] for record in out[4:6]]
    assert alerted == ["t0", "t1"]
    assert marks.undelivered(["t0", "t1", "t2"]) == ["t2"]
    assert out[6].value == b"not json"


def test_an_alert_already_delivered_is_not_produced_again() -> None:
    tx = make_tx(0)
    produced = [
        OutgoingRecord(TOPICS.transactions, tx.card_id.encode(), tx.model_dump_json().encode())
    ]
    marks = MemoryAlertMarks()
    marks.mark(["t0"])
    out = process_records(
        consumed_records(produced, partitions=1),
        detector(0.0),
        marks,
        TOPICS,
        max_record_bytes=1_000,
        raised_at=RAISED_AT,
    )
    assert [record.topic for record in out] == [TOPICS.scores]
    assert orjson.loads(out[0].value)["decision"] == "alert"


class AskedMarks(MemoryAlertMarks):
    """Alert marks that remember what they were asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def undelivered(self, transaction_ids: list[str]) -> list[str]:
        self.asked.append(list(transaction_ids))
        return super().undelivered(transaction_ids)


def test_only_repeated_transactions_are_asked_whether_their_alert_was_delivered() -> None:
    """A first sighting was never alerted before: the question is for repeats alone."""
    state = InMemoryFeatureState(WindowSpec())
    transactions = [make_tx(index, hours=index, card=f"c{index}") for index in range(3)]
    first = state.observe(transactions[:2])
    verdicts = score_batch(detector(0.0), transactions[:2], first)
    assert verdicts.repeats == frozenset()
    marks = AskedMarks()
    marks.mark(["t0"])
    assert undelivered_alerts(marks, verdicts.alerts, verdicts.repeats) == verdicts.alerts
    assert marks.asked == []

    again = state.observe(transactions)  # t0 and t1 again, t2 for the first time
    verdicts = score_batch(detector(0.0), transactions, again)
    assert verdicts.repeats == frozenset({"t0", "t1"})
    kept = undelivered_alerts(marks, verdicts.alerts, verdicts.repeats)
    assert [tx.transaction_id for tx, _ in kept] == ["t1", "t2"]
    assert marks.asked == [["t0", "t1"]]
    # Without knowing the repeats, every alert is asked about.
    assert undelivered_alerts(marks, verdicts.alerts) == kept
    assert marks.asked[-1] == ["t0", "t1", "t2"]


def test_a_repeat_with_other_content_goes_to_the_dead_letters_and_the_rest_are_scored() -> None:
    first = make_tx(1)
    batch = [first, make_tx(2, hours=1), first.model_copy(update={"amount": 99.0}), first]
    produced = [
        OutgoingRecord(TOPICS.transactions, tx.card_id.encode(), tx.model_dump_json().encode())
        for tx in batch
    ]
    records = consumed_records(produced, partitions=1)
    out = process_records(
        records,
        detector(1.0),
        MemoryAlertMarks(),
        TOPICS,
        max_record_bytes=1_000,
        raised_at=RAISED_AT,
    )

    assert [record.topic for record in out] == [TOPICS.scores] * 3 + [TOPICS.dlq]
    scores = [orjson.loads(record.value) for record in out[:3]]
    assert [(s["transaction_id"], s["replayed"]) for s in scores] == [
        ("t1", False),
        ("t2", False),
        ("t1", True),
    ]
    assert scores[2]["score"] == scores[0]["score"]
    letter = out[3]
    assert letter.value == produced[2].value
    info = read_dead_letter_headers(letter.headers or [])
    assert info.reason == "transaction_id: t1 was already scored with different content"
    assert (info.source_partition, info.source_offset) == (0, 2)


def test_without_skipping_a_conflict_the_batch_is_refused_whole() -> None:
    scorer = detector(1.0)
    score_batch(scorer, [make_tx(1)])
    with pytest.raises(ConflictingRepeatError):
        score_batch(scorer, [make_tx(2), make_tx(1, amount=5.0)])
    verdicts = score_batch(scorer, [make_tx(3), make_tx(1, amount=5.0)], skip_conflicts=True)
    assert verdicts.conflicts == (1,)
    assert [s.transaction_id for s in verdicts.scored] == ["t3"]
    assert verdicts.scored_transactions([make_tx(3), make_tx(1)]) == [make_tx(3)]
