"""Evaluation with the retrain job in the loop: a blend serves both models as chosen."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from models.blend import BLENDS, RecentBlend, blend, blend_name
from models.simulator import SimulationConfig, simulate
from pipelines.offline.datasets import LabelledDataset, dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions
from pipelines.retrain.job import RetrainOptions
from pipelines.retrain.loop import evaluate_with_retrain, schedule
from pipelines.retrain.loop_run import LoopRun

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    frame = simulate(
        SimulationConfig(customers=300, terminals=600, days=70, start_date=date(2018, 4, 1), seed=2)
    )
    return dataset_from_frame(frame)


@pytest.fixture(scope="module")
def blended(dataset: LabelledDataset) -> LoopRun:
    evaluation = EvaluationOptions(
        learner="logistic",
        test_start=datetime(2018, 5, 27, tzinfo=UTC),
        test_end=datetime(2018, 6, 10, tzinfo=UTC),
        k=10,
    )
    retraining = RetrainOptions(train_days=21, min_labels=500, min_frauds=5, k=10)
    recent = RecentBlend(window_seconds=3 * 86_400, every_seconds=86_400, min_frauds=5)
    return evaluate_with_retrain(dataset, evaluation, retraining, WEEK, "blend", recent=recent)


def test_a_blend_serves_both_models_as_chosen_at_the_moment(blended: LoopRun) -> None:
    run = blended
    assert run.steps
    assert all(step.decision.startswith("blend ") for step in run.steps)
    names = {blend_name(chosen): chosen for chosen in BLENDS}
    assert {step.decision.split()[1] for step in run.steps} <= set(names)
    scores = run.scores
    before = scores["timestamp"] < run.steps[0].at
    # Before the first retrain only the online learner serves, and is the batch part too.
    assert np.array_equal(scores.loc[before, "score"], scores.loc[before, "online_score"])
    assert np.array_equal(scores.loc[before, "batch_score"], scores.loc[before, "online_score"])
    assert scores.loc[before, "blend"].isna().all()
    after = scores.loc[~before]
    assert after["blend"].isin(names).all()
    for name in after["blend"].unique():
        rows = after.loc[after["blend"] == name]
        expected = blend(rows["online_score"], rows["batch_score"], names[name])
        assert np.allclose(rows["score"], expected)
    assert scores["score"].between(0.0, 1.0).all()
    assert scores["scenario"].isin([0, 1, 2, 3]).all()
    assert set(run.metrics.overall.scenario_average_precision) <= {1, 2, 3}


def test_the_blend_is_chosen_again_between_retrains_on_recent_labels(
    blended: LoopRun,
) -> None:
    choices = blended.blends
    assert choices
    assert choices[0][0] == blended.steps[0].at
    assert all(chosen in BLENDS for _, chosen in choices)
    # Chosen at each retrain, then about once a day until the next.
    first, second = blended.steps[0].at, blended.steps[1].at
    between = [at for at, _ in choices if first <= at < second]
    assert len(between) == 7
    assert all(later - earlier >= DAY for earlier, later in itertools.pairwise(between))
    served = blended.scores.dropna(subset=["blend"])
    assert set(served["blend"]) <= {blend_name(chosen) for _, chosen in choices}


def test_each_part_is_measured_on_the_same_weeks_as_the_served_scores(blended: LoopRun) -> None:
    weeks = [week.start for week in blended.metrics.weekly]
    assert [week.start for week in blended.online_metrics.weekly] == weeks
    assert [week.start for week in blended.batch_metrics.weekly] == weeks
    summary = blended.summary()
    assert summary["batch"] == blended.batch_metrics.to_dict()
    assert summary["blends"]


def test_batch_mode_serves_the_batch_part(dataset: LabelledDataset) -> None:
    evaluation = EvaluationOptions(
        learner="logistic",
        test_start=datetime(2018, 6, 3, tzinfo=UTC),
        test_end=datetime(2018, 6, 10, tzinfo=UTC),
        k=10,
    )
    retraining = RetrainOptions(train_days=21, min_labels=500, min_frauds=5, k=10)

    run = evaluate_with_retrain(dataset, evaluation, retraining, WEEK, "batch")

    assert run.steps
    assert np.array_equal(run.scores["score"], run.scores["batch_score"])
    assert "blend" not in run.scores
    assert run.metrics.weekly == run.batch_metrics.weekly


def test_retrains_are_anchored_on_the_test_start_and_stop_before_its_end() -> None:
    first = datetime(2018, 4, 1, tzinfo=UTC)
    start = datetime(2018, 5, 27, tzinfo=UTC)
    end = datetime(2018, 6, 17, tzinfo=UTC)
    last = datetime(2018, 7, 1, tzinfo=UTC)

    champion = schedule(first, last, start, end, WEEK, "champion")
    latest = schedule(first, last, start, end, WEEK, "blend")

    assert champion[0] == datetime(2018, 4, 8, tzinfo=UTC)
    assert all((moment - start) % WEEK == timedelta(0) for moment in champion)
    assert champion[-1] == datetime(2018, 6, 10, tzinfo=UTC)
    # Only the latest model serves a blend: the retrains before the test start's are dropped.
    assert list(latest) == [start, start + WEEK, start + 2 * WEEK]
    assert list(schedule(first, last, start, None, WEEK, "batch"))[-1] == last
