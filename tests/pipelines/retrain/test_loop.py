"""Evaluation with the retrain job in the loop: a blend serves both models at a chosen weight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from models.blend import BLEND_WEIGHTS
from models.simulator import SimulationConfig, simulate
from pipelines.offline.datasets import LabelledDataset, dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions
from pipelines.retrain.job import RetrainOptions
from pipelines.retrain.loop import evaluate_with_retrain


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    frame = simulate(
        SimulationConfig(customers=300, terminals=600, days=70, start_date=date(2018, 4, 1), seed=2)
    )
    return dataset_from_frame(frame)


def test_a_blend_serves_both_models_at_the_weight_chosen_on_the_hold_out(
    dataset: LabelledDataset,
) -> None:
    evaluation = EvaluationOptions(
        learner="logistic",
        test_start=datetime(2018, 5, 27, tzinfo=UTC),
        test_end=datetime(2018, 6, 10, tzinfo=UTC),
        k=10,
    )
    retraining = RetrainOptions(train_days=21, min_labels=500, min_frauds=5, k=10)

    run = evaluate_with_retrain(dataset, evaluation, retraining, timedelta(days=7), "blend")

    assert run.steps
    assert all(step.decision.startswith("blend ") for step in run.steps)
    weights = {float(step.decision.split()[1]) for step in run.steps}
    assert weights <= set(BLEND_WEIGHTS)
    scores = run.scores
    before = scores["timestamp"] < run.steps[0].at
    # Before the first retrain only the online learner serves.
    assert np.array_equal(scores.loc[before, "score"], scores.loc[before, "online_score"])
    assert scores["score"].between(0.0, 1.0).all()
    assert scores["scenario"].isin([0, 1, 2, 3]).all()
    assert set(run.metrics.overall.scenario_average_precision) <= {1, 2, 3}
