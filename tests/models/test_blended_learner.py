"""The online learner and a batch model served as one: the blend's score, the parts' learning,
the choice made on the labels as they arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from models import blended_learner
from models.batch_model import BatchLearner, BatchSpec, train_batch
from models.blend import BLENDS, EITHER, Blend, RecentBlend, blend
from models.blended_learner import BlendedLearner
from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Label, Transaction
from models.snapshots import dump_snapshot, load_snapshot

NAMES = ("amount", "is_night")
HOUR = 3_600


def _batch(signal: int, algorithm: str = "logistic") -> BatchLearner:
    """A batch model that ranks by feature ``signal`` alone."""
    rng = np.random.default_rng(signal)
    x = rng.normal(size=(3_000, 2))
    y = x[:, signal] + 0.3 * rng.normal(size=3_000) > 1.5
    params = {"max_iter": 30} if algorithm == "hgb" else {}
    spec = BatchSpec(algorithm, params, min_labels=100)  # type: ignore[arg-type]
    return train_batch(x, y, list(NAMES), spec)


def _online(signal: int, labels: int = 2_000) -> OnlineLearner:
    """An online learner that learned to rank by feature ``signal``."""
    learner = OnlineLearner("logistic")
    rng = np.random.default_rng(10 + signal)
    for row in rng.normal(size=(labels, 2)):
        learner.learn(dict(zip(NAMES, row.tolist(), strict=True)), bool(row[signal] > 1.5))
    return learner


def _vectors(count: int, seed: int = 0) -> list[dict[str, float]]:
    rows = np.random.default_rng(seed).normal(size=(count, 2))
    return [dict(zip(NAMES, row.tolist(), strict=True)) for row in rows]


@pytest.mark.parametrize("chosen", BLENDS)
def test_scores_are_the_blend_of_the_two_parts(chosen: Blend) -> None:
    online, batch = _online(0), _batch(1, "hgb")
    model = BlendedLearner(online, batch, RecentBlend(chosen=chosen))
    for vector in _vectors(20):
        expected = blend([online.score(vector)], [batch.score(vector)], chosen)[0]
        assert model.score(vector) == pytest.approx(expected, abs=1e-12)
        score, _ = model.score_and_explain(vector, 3)
        assert score == pytest.approx(expected, abs=1e-12)
        assert model.score_and_explain(vector, 0) == (model.score(vector), ())


def test_reasons_are_those_of_the_part_that_weighs_more() -> None:
    online, batch = _online(0), _batch(1)
    vector = {"amount": 3.0, "is_night": -2.0}  # the online part suspects, the batch part not
    cases: tuple[tuple[Blend, OnlineLearner], ...] = (
        (0.25, online),
        (0.75, batch),
        (EITHER, online),
    )
    for chosen, part in cases:
        model = BlendedLearner(online, batch, RecentBlend(chosen=chosen))
        assert model.score_and_explain(vector, 2)[1] == part.score_and_explain(vector, 2)[1]
    assert online.score_and_explain(vector, 2)[1][0].feature == "amount"


def test_only_the_online_part_learns_and_the_version_counts_its_labels() -> None:
    online, batch = OnlineLearner("logistic"), _batch(1)
    model = BlendedLearner(online, batch, RecentBlend())
    batch_before = [batch.score(vector) for vector in _vectors(5)]
    model.rebase("m000004")
    for vector in _vectors(3):
        model.learn(vector, is_fraud=True)
    model.learn_kept(NAMES, [0.5, 0.5], is_fraud=False)
    assert (online.labels_learned, online.frauds_learned) == (4, 3)
    assert (model.labels_learned, model.frauds_learned) == (4, 3)
    assert model.version == "m000004+4"
    assert [batch.score(vector) for vector in _vectors(5)] == batch_before
    assert model.params["batch"] == batch.lineage
    assert model.params["blend"] == "1"


def test_the_blend_turns_to_the_part_that_ranks_the_recent_labels() -> None:
    """The labels arriving follow the online part's feature: within the hour it serves alone."""
    online, batch = _online(0), _batch(1)
    recent = RecentBlend(min_frauds=5, chosen=1.0)
    model = BlendedLearner(online, batch, recent)
    second = 1_600_000_000
    model.labels_known(second)  # the first choice: nothing to choose on, the blend is kept
    assert model.chosen == 1.0
    for vector in _vectors(400, seed=3):
        model.learn(vector, is_fraud=vector["amount"] > 1.5)
    model.labels_known(second + 60)  # within the hour: the labels wait for the next choice
    assert (model.chosen, recent.labels) == (1.0, 0)
    model.labels_known(second + HOUR)
    assert (model.chosen, recent.labels) == (0.0, 400)


def test_waiting_labels_keep_the_time_they_arrived_by_and_are_judged_in_bounded_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blended_learner, "JUDGED_TOGETHER", 25)
    model = BlendedLearner(OnlineLearner("logistic"), _batch(0), RecentBlend())
    model.labels_known(0)  # the first choice
    vectors = _vectors(30, seed=4)
    for vector in vectors[:10]:
        model.learn(vector, is_fraud=False)
    model.labels_known(60)
    for vector in vectors[10:20]:
        model.learn(vector, is_fraud=False)
    model.labels_known(120)
    assert model.recent.labels == 0  # 20 waiting, fewer than judged together
    for vector in vectors[20:]:
        model.learn(vector, is_fraud=True)
    model.labels_known(180)
    assert model.recent._seconds.tolist() == [60] * 10 + [120] * 10 + [180] * 10
    assert model.chosen == 1.0  # judged before the hour is out, not chosen


def test_each_label_is_scored_before_the_online_part_learns_it_and_by_the_batch_part_serving() -> (
    None
):
    online, old, new = OnlineLearner("logistic"), _batch(0), _batch(1)
    model = BlendedLearner(online, old, RecentBlend())
    vectors = _vectors(30, seed=5)
    before = [online.score(vector) for vector in vectors[:1]]
    for vector in vectors:
        model.learn(vector, is_fraud=vector["is_night"] > 0.0)
    model.with_batch(new, 0.25, second=1_000)
    assert model.batch is new
    assert model.chosen == 0.25  # too few frauds in the window: the hold-out's choice
    recent = model.recent
    assert recent.labels == 30
    assert recent._online[0] == before[0]  # the first label, scored before any learning
    rows = np.array([[vector[name] for name in NAMES] for vector in vectors])
    assert np.array_equal(recent._batch, old.predict_many(rows))


def test_a_feature_the_vector_lacks_is_judged_at_the_batch_models_training_mean() -> None:
    online, batch = OnlineLearner("logistic"), _batch(0)
    model = BlendedLearner(online, batch, RecentBlend())
    model.learn({"amount": 2.0}, is_fraud=True)
    model.labels_known(1_000)
    assert model.recent._batch[0] == batch.score({"amount": 2.0})
    assert model.recent._batch[0] == pytest.approx(
        batch.predict_many(np.array([[2.0, batch.means[1]]]))[0]
    )


def test_a_signed_snapshot_loads_back_through_the_restricted_unpickler() -> None:
    model = BlendedLearner(_online(0), _batch(1, "hgb"), RecentBlend(chosen=0.5))
    for vector in _vectors(10):
        model.learn(vector, is_fraud=False)
    model.labels_known(5_000)
    again = load_snapshot(dump_snapshot(model, b"key"), b"key")
    assert isinstance(again, BlendedLearner)
    assert [again.score(vector) for vector in _vectors(10, seed=9)] == [
        model.score(vector) for vector in _vectors(10, seed=9)
    ]
    assert (again.chosen, again.recent.labels) == (0.5, 10)


def test_the_detector_tells_the_blend_when_its_labels_arrived() -> None:
    features = FeatureSet(FeatureSpec())
    names = features.names
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, len(names)))
    batch = train_batch(x, x[:, 0] > 1.5, list(names), BatchSpec("logistic", min_labels=100))
    model = BlendedLearner(OnlineLearner("logistic"), batch, RecentBlend(chosen=0.75))
    detector = FraudDetector(features, InMemoryFeatureState(features.spec.windows), model)
    when = datetime(2018, 4, 1, 12, tzinfo=UTC)
    tx = Transaction(
        transaction_id="t1",
        timestamp=when,
        card_id="c1",
        terminal_id="p1",
        amount=30.0,
        currency="EUR",
    )
    scored = detector.score(tx)
    vector = detector.vector_of("t1")
    assert vector is not None
    assert scored.score == pytest.approx(model.score(vector))
    known = when + timedelta(days=7)
    label = Label(transaction_id="t1", is_fraud=True, labelled_at=known, source="chargeback")
    assert detector.learn([label]).learned == 1
    assert model.recent.labels == 1
    assert model.recent._seconds.tolist() == [int(known.timestamp())]
    assert detector.model_version == "blend+1"
