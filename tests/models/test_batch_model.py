"""Batch models: deterministic training, the learner's interface, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from models.batch_model import BatchLearner, BatchSpec, BatchTrainingError, train_batch
from models.snapshots import dump_snapshot, load_snapshot

NAMES = ["amount", "is_night", "card_tx_count_1d"]


def _data(rows: int = 3_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(NAMES)))
    y = x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=rows) > 2.0
    return x, y


def _fast(algorithm: str, seed: int = 0) -> BatchSpec:
    params = {"max_iter": 30} if algorithm == "hgb" else {}
    return BatchSpec(algorithm, params, seed=seed, min_labels=100)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["hgb", "logistic"])
def test_same_rows_and_seed_give_identical_predictions(algorithm: str) -> None:
    x, y = _data()
    first = train_batch(x, y, NAMES, _fast(algorithm))
    second = train_batch(x.copy(), y.copy(), NAMES, _fast(algorithm))
    assert np.array_equal(first.predict_many(x), second.predict_many(x))


@pytest.mark.parametrize("algorithm", ["hgb", "logistic"])
def test_a_row_scores_the_same_alone_or_in_a_batch(algorithm: str) -> None:
    x, y = _data()
    model = train_batch(x, y, NAMES, _fast(algorithm))
    together = model.predict_many(x[:50])
    alone = [model.score(dict(zip(NAMES, row, strict=True))) for row in x[:50]]
    assert together.tolist() == alone


@pytest.mark.parametrize("algorithm", ["hgb", "logistic"])
def test_serves_behind_the_learner_interface(algorithm: str) -> None:
    x, y = _data()
    model = train_batch(x, y, NAMES, _fast(algorithm))
    vector = dict(zip(NAMES, [3.0, 0.0, 0.0], strict=True))
    score, reasons = model.score_and_explain(vector, 3)
    assert 0.0 < score < 1.0
    assert score == model.score(vector)
    assert reasons
    assert reasons[0].feature == "amount"
    assert model.labels_learned == len(y)
    assert model.frauds_learned == int(y.sum())
    model.rebase("m000007")
    model.learn(vector, is_fraud=True)  # a batch model does not learn online
    assert model.version == "m000007+0"
    assert model.score(vector) == score
    again = load_snapshot(dump_snapshot(model, b"key"), b"key")
    assert isinstance(again, BatchLearner)
    assert again.score(vector) == score


def test_weighting_keeps_the_ranking_and_the_probability_scale() -> None:
    x, y = _data()
    weighted = train_batch(x, y, NAMES, BatchSpec("logistic", min_labels=100))
    plain = train_batch(x, y, NAMES, BatchSpec("logistic", positive_weight=1.0, min_labels=100))
    # Corrected back from the weighted odds, the mean score stays near the fraud rate.
    assert abs(weighted.predict_many(x).mean() - y.mean()) < 0.05
    assert abs(plain.predict_many(x).mean() - y.mean()) < 0.05


def test_too_few_labels_or_no_fraud_is_refused() -> None:
    x, y = _data()
    with pytest.raises(BatchTrainingError, match="too few labels"):
        train_batch(x[:50], y[:50], NAMES, _fast("hgb"))
    with pytest.raises(BatchTrainingError, match="0 frauds"):
        train_batch(x, np.zeros(len(x), dtype=bool), NAMES, _fast("hgb"))
    with pytest.raises(ValueError, match="unknown batch algorithm"):
        BatchSpec("forest")  # type: ignore[arg-type]


def test_a_snapshot_leaves_out_the_flat_trees_and_scores_the_same_once_loaded() -> None:
    x, y = _data()
    model = train_batch(x, y, NAMES, _fast("hgb"))
    before = dump_snapshot(model, b"key")
    scores = model.predict_many(x[:20])  # makes the flat trees
    assert "_flat_trees" in model.__dict__
    after = dump_snapshot(model, b"key")
    assert len(after) == len(before)
    again = load_snapshot(after, b"key")
    assert isinstance(again, BatchLearner)
    assert "_flat_trees" not in again.__dict__
    assert again.predict_many(x[:20]).tolist() == scores.tolist()
