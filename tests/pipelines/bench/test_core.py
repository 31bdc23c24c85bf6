"""`fraudstream bench core` measures learners as they serve: trained, past any warm-up."""

from __future__ import annotations

from models.binned import BinnedLogisticRegression
from models.learners import DEFAULT_LEARNER
from models.replay import replay
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
