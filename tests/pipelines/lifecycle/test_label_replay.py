"""Labels acknowledged after the last snapshot are learned again at start-up, exactly once,
so that a restarted process serves what one that never stopped would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Label, Transaction
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.retrain.offline_store import ParquetOfflineStore
from tests.builders import make_label, make_tx

KEY = b"a-test-secret-of-at-least-32-bytes!"


def _detector() -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic")
    )


@dataclass
class _Process:
    """What ``serve`` wires for the models, on one data directory."""

    detector: FraudDetector
    store: ParquetOfflineStore
    lifecycle: ModelLifecycle

    def learn(self, labels: list[Label]) -> int:
        outcome = self.detector.learn(labels, on_learned=self.store.append)
        self.store.flush()  # before the labels are acknowledged
        return outcome.learned


def _start(data: Path) -> _Process:
    detector = _detector()
    store = ParquetOfflineStore(data / "offline", detector.features.names)
    registry = ModelRegistry(data / "models", FileIndex(data / "models" / "index.json"), KEY)
    lifecycle = ModelLifecycle(
        detector, registry, KEY, state_path=data / "state.snapshot", labels=store
    )
    lifecycle.resume()
    return _Process(detector, store, lifecycle)


def _early(indexes: range) -> list[Transaction]:
    return [
        make_tx(i, hours=i, card=f"c{i % 6}", terminal=f"p{i % 4}", amount=10.0 + 17 * (i % 9))
        for i in indexes
    ]


def _late(indexes: range) -> list[Transaction]:
    """Scored after the snapshot, on cards and terminals the probes never read."""
    return [make_tx(i, hours=i, card=f"late-{i % 3}", terminal="late", amount=90) for i in indexes]


def _labels(indexes: range) -> list[Label]:
    return [make_label(i, i % 4 == 0, hours=200 + i) for i in indexes]


PROBES = [
    make_tx(1_000 + i, hours=150 + i, card=f"c{i % 6}", terminal=f"p{i % 4}", amount=12.0 * i + 5)
    for i in range(12)
]


def _reference(steps: list[list[Transaction] | list[Label]]) -> FraudDetector:
    detector = _detector()
    for step in steps:
        if step and isinstance(step[0], Transaction):
            detector.score_many([tx for tx in step if isinstance(tx, Transaction)])
        else:
            detector.learn([label for label in step if isinstance(label, Label)])
    return detector


def _assert_same(recovered: FraudDetector, reference: FraudDetector, labelled: list[str]) -> None:
    assert recovered.learner.labels_learned == reference.learner.labels_learned
    assert recovered.learner.frauds_learned == reference.learner.frauds_learned
    for transaction_id in labelled:
        ours, theirs = recovered.pending.get(transaction_id), reference.pending.get(transaction_id)
        assert ours is not None
        assert theirs is not None
        assert (ours.verdict, list(ours.values)) == (theirs.verdict, list(theirs.values))
    assert [s.score for s in recovered.score_many(PROBES)] == [
        s.score for s in reference.score_many(PROBES)
    ]


def test_a_crash_loses_no_acknowledged_label_and_a_restart_learns_none_twice(
    tmp_path: Path,
) -> None:
    first = _start(tmp_path)
    first.detector.score_many(_early(range(60)))
    assert first.learn(_labels(range(20))) == 20
    first.lifecycle.snapshot("on demand")
    first.detector.score_many(_late(range(60, 80)))
    correction = [make_label(4, False, hours=300)]  # flips a verdict learned before the snapshot
    assert first.learn(_labels(range(20, 40)) + _labels(range(60, 80)) + correction) == 41
    # The process dies here: no stop, no final snapshot.

    second = _start(tmp_path)
    assert second.lifecycle.relearned == 41
    reference = _reference(
        [
            _early(range(60)),
            _labels(range(20)),
            _late(range(60, 80)),
            _labels(range(20, 40)) + _labels(range(60, 80)) + correction,
        ]
    )
    labelled = [f"t{i}" for i in [*range(40), *range(60, 80)]]
    # The probes are scored once per detector: a third start must restore the state as the
    # recovery snapshot left it, before these probes.
    _assert_same(second.detector, reference, labelled)

    third = _start(tmp_path)
    assert third.lifecycle.relearned == 0
    assert third.detector.learner.labels_learned == reference.learner.labels_learned
    # Each verdict is known as it stands: none is learned twice.
    resent = [label for label in _labels(range(40)) if label.transaction_id != "t4"]
    assert third.learn(resent + correction) == 0


@pytest.mark.anyio
async def test_a_background_snapshot_reflects_the_instant_it_was_taken(tmp_path: Path) -> None:
    first = _start(tmp_path)
    first.detector.score_many(_early(range(60)))
    assert first.learn(_labels(range(20))) == 20
    snapshot = asyncio.create_task(first.lifecycle.snapshot_in_background("periodic"))
    await asyncio.sleep(0)  # the snapshot has taken what it reflects, and forked
    assert first.learn(_labels(range(20, 30))) == 10  # learned while the state is written
    record = await snapshot
    assert record is not None
    assert first.lifecycle.registry.champion() == record.version
    assert record.labels_learned == 20
    # Named by what was dumped: the ten learned meanwhile count after it.
    assert first.detector.model_version == f"{record.version}+10"

    second = _start(tmp_path)
    assert second.lifecycle.relearned == 10  # the ten after the instant, learned again
    reference = _reference([_early(range(60)), _labels(range(20)), _labels(range(20, 30))])
    _assert_same(second.detector, reference, [f"t{i}" for i in range(30)])


def test_a_crash_between_the_state_and_the_pointer_serves_the_state_s_version(
    tmp_path: Path,
) -> None:
    first = _start(tmp_path)
    first.detector.score_many(_early(range(60)))
    assert first.learn(_labels(range(20))) == 20
    before = first.lifecycle.registry.champion()
    record = first.lifecycle.snapshot("on demand")
    # As if the process died after writing the state, before moving the champion pointer.
    first.lifecycle.registry.set_champion(str(before), detail="test: the pointer as it was")

    second = _start(tmp_path)
    assert second.lifecycle.registry.champion() == record.version
    assert second.detector.model_version == f"{record.version}+0"
    assert second.detector.learner.labels_learned == 20
    assert second.lifecycle.relearned == 0
