"""`fraudstream bench core` measures learners as they serve: trained, past any warm-up."""

from __future__ import annotations

import pytest

from models.binned import BinnedLogisticRegression
from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.replay import replay
from pipelines.bench import core
from pipelines.bench.core import (
    LABEL_DELAY,
    TRAINING_TRANSACTIONS,
    _detector,
    bench_stream,
    trained_learner,
)


def test_the_default_learner_is_trained_past_its_warm_up_before_it_is_measured() -> None:
    learner = trained_learner(DEFAULT_LEARNER, TRAINING_TRANSACTIONS, seed=1)
    model = learner.model
    assert isinstance(model, BinnedLogisticRegression)
    # The warm-up's end sets the bins: a model measured before it is a plain linear one.
    assert model.edges
    assert learner.labels_learned >= model.warm_up


def test_every_run_learns_on_a_copy_so_that_rounds_start_alike() -> None:
    trained = trained_learner("logistic", 2_000, seed=1)
    learned = trained.labels_learned
    stream, labels = bench_stream(2_000, seed=0)
    detector = _detector(trained)
    replay(stream, labels, detector, int(LABEL_DELAY.total_seconds()))
    assert detector.learner.labels_learned > learned
    assert trained.labels_learned == learned


def test_every_round_measures_every_learner_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    measured: list[str] = []

    def record(trained: OnlineLearner, *_: object) -> tuple[float, float, float, float, float]:
        measured.append(trained.name)
        return (1.0, 2.0, 3.0, 4.0, float(len(measured)))

    monkeypatch.setattr(core, "_round", record)
    rows = core.bench_core(
        ["logistic", "binned"], transactions=500, rounds=3, training_transactions=500
    )
    assert measured == ["logistic", "binned"] * 3
    # Each row is the median of its own learner's rounds: logistic had rounds 1, 3 and 5.
    assert [(row.learner, row.transactions_per_second) for row in rows] == [
        ("logistic", 3.0),
        ("binned", 4.0),
    ]
