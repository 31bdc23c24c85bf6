"""A batch scored around its stores: over Redis it loads ahead and writes behind, and answers
exactly what the detector answers over memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import redis

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Transaction
from pipelines.state.redis_stores import RedisCooldownBook, RedisPendingStore
from pipelines.stream.scoring_unit import ScoringUnit
from tests.builders import make_tx

PREFIX = "fraudstream:unit-test:"


class CountingConnection(redis.Connection):
    """A connection that counts the commands it sends."""

    sent: ClassVar[list[str]] = []

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent.append(str(args[0]))
        super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    with redis.Redis(connection_pool=pool) as connected:
        connected.delete(*connected.keys(f"{PREFIX}*") or [f"{PREFIX}none"])
        yield connected
    pool.disconnect()


def detector(client: redis.Redis | None) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    if client is None:
        alerting = AlertPolicy(AlertPolicyConfig(threshold=0.0))
        return FraudDetector(
            features,
            InMemoryFeatureState(features.spec.windows),
            OnlineLearner("logistic"),
            alerting=alerting,
        )
    book = RedisCooldownBook(client, prefix=PREFIX, cooldown_seconds=3_600)
    return FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        OnlineLearner("logistic"),
        alerting=AlertPolicy(AlertPolicyConfig(threshold=0.0), book),
        pending=RedisPendingStore(client, prefix=PREFIX, ttl_seconds=86_400),
    )


def batch(first: int, count: int) -> list[Transaction]:
    return [make_tx(i, hours=i / 60, card=f"c{i % 7}") for i in range(first, first + count)]


def test_a_batch_loads_its_stores_once_each_before_it_is_scored_and_writes_when_told(
    client: redis.Redis,
) -> None:
    scorer = detector(client)
    unit = ScoringUnit(scorer)
    first = batch(0, 20)
    repeated = [*first[:5], *batch(20, 5)]
    reference = detector(None)
    expected = [s.document() for s in reference.score_many(first)]
    expected_again = [s.document() for s in reference.score_many(repeated)]

    sent_when_loaded: list[list[str]] = []
    CountingConnection.sent.clear()
    scored = unit.score(
        first,
        scorer.state.observe(first),
        on_loaded=lambda: sent_when_loaded.append(list(CountingConnection.sent)),
    )
    # One read of the cooldowns, none of the vectors (no repeats), before the scoring.
    assert sent_when_loaded == [["MGET"]]
    assert CountingConnection.sent == ["MGET"]
    assert [s.document() for s in scored] == expected
    assert client.keys(f"{PREFIX}*") == []  # nothing written until the writes are made

    writes = unit.writes()
    assert client.keys(f"{PREFIX}*") == []
    writes()
    assert len(client.keys(f"{PREFIX}pending:*")) == 20

    CountingConnection.sent.clear()
    again = unit.score(repeated, scorer.state.observe(repeated))
    # The repeats' first answers in one read, the cooldowns in another.
    assert CountingConnection.sent == ["MGET", "MGET"]
    assert [s.document() for s in again] == expected_again
    assert [s.replayed for s in again] == [True] * 5 + [False] * 5


def test_a_failed_batch_leaves_nothing_buffered_to_reach_redis(client: redis.Redis) -> None:
    scorer = detector(client)
    unit = ScoringUnit(scorer)
    transactions = batch(0, 10)
    unit.score(transactions, scorer.state.observe(transactions))
    unit.discard()
    unit.writes()()
    assert client.keys(f"{PREFIX}*") == []


def test_over_memory_the_unit_scores_as_the_detector_and_has_nothing_to_write() -> None:
    scorer, reference = detector(None), detector(None)
    unit = ScoringUnit(scorer)
    transactions = batch(0, 30)
    loaded: list[bool] = []
    scored = unit.score(
        transactions, scorer.state.observe(transactions), lambda: loaded.append(True)
    )
    assert loaded == [True]
    assert [s.document() for s in scored] == [
        s.document() for s in reference.score_many(transactions)
    ]
    unit.writes()()  # nothing behind: the in-memory stores wrote at once
    assert scorer.vector_of(transactions[-1].transaction_id) is not None
