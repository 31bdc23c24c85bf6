"""The offline evaluation: deterministic, better than chance, and honest about its input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from models.simulator import SimulationConfig, simulate
from pipelines.offline.datasets import LabelledDataset, dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions, evaluate, write_scores


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    frame = simulate(
        SimulationConfig(customers=400, terminals=800, days=75, start_date=date(2018, 4, 1), seed=3)
    )
    return dataset_from_frame(frame)


def test_same_inputs_and_seed_give_the_same_numbers(dataset: LabelledDataset) -> None:
    options = EvaluationOptions(test_start=datetime(2018, 5, 20, tzinfo=UTC))
    first, second = evaluate(dataset, options), evaluate(dataset, options)
    assert first.metrics == second.metrics
    pd.testing.assert_frame_equal(first.scores, second.scores)


def test_online_learner_beats_chance_by_far(dataset: LabelledDataset) -> None:
    run = evaluate(dataset, EvaluationOptions(test_start=datetime(2018, 5, 20, tzinfo=UTC)))
    overall = run.metrics.overall
    fraud_rate = overall.frauds / overall.transactions
    # A small population keeps the handbook's fixed daily compromises, so fraud is ~9 % here.
    assert overall.average_precision > max(0.5, 3 * fraud_rate)
    assert overall.roc_auc > 0.75
    assert len(run.metrics.weekly) == 4  # 2018-05-20 to the end of 2018-06-14
    assert run.transactions_per_second > 0


def test_scores_are_those_given_at_arrival_for_every_transaction(
    dataset: LabelledDataset, tmp_path: Path
) -> None:
    run = evaluate(dataset, EvaluationOptions())
    path = tmp_path / "scores.csv"
    write_scores(run, path)
    written = pd.read_csv(path, dtype={"transaction_id": str})
    assert list(written.columns) == ["transaction_id", "score"]
    assert len(written) == len(dataset.transactions)
    # The first transaction is scored by an untrained model: exactly the prior.
    assert written["score"].iloc[0] == 0.5


def test_labels_arrive_only_after_the_delay(dataset: LabelledDataset) -> None:
    # With a delay longer than the data, nothing is ever learned: every score is the prior.
    run = evaluate(
        dataset,
        EvaluationOptions(
            label_delay=pd.Timedelta(days=400).to_pytimedelta(),
            test_start=datetime(2018, 5, 20, tzinfo=UTC),
        ),
    )
    assert set(run.scores["score"]) == {0.5}
