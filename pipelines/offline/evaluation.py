"""Offline evaluation: replay a labelled data set through the live scoring code and measure it.

Transactions are replayed in event-time order through the same `FraudDetector` the service
runs, each label revealed only after the label delay; the scores they got at arrival are then
measured with the metrics of `models.metrics` on the test period.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from models.detector import DetectorPolicy, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.feedback import FeedbackPolicy, Investigators
from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.period_metrics import SCENARIO_COLUMN, EvaluationMetrics, evaluate_scores
from models.replay import replay
from models.state import WindowSpec
from pipelines.offline.datasets import LabelledDataset

WARM_UP = timedelta(days=30)
"""Default time before the test period: the longest feature window has filled."""


@dataclass(frozen=True)
class EvaluationOptions:
    """What to replay and how to measure it."""

    learner: str = DEFAULT_LEARNER
    params: Mapping[str, Any] = field(default_factory=dict)
    label_delay: timedelta = timedelta(days=7)
    test_start: datetime | None = None
    """Default: the first day plus the warm-up and the label delay."""
    test_end: datetime | None = None
    """Exclusive; default: the end of the data."""
    k: int = 100
    seed: int = 0
    feedback: FeedbackPolicy | None = None
    """Investigators checking the day's riskiest cards, learned from as analyst labels."""


@dataclass(frozen=True)
class EvaluationRun:
    """The outcome of one replay."""

    options: EvaluationOptions
    metrics: EvaluationMetrics
    scores: pd.DataFrame
    """One row per transaction: id, timestamp, card, score at arrival, label, label known at
    (and fraud scenario, when the data set has them)."""
    seconds: float
    """Wall-clock time of the replay alone (features, scoring and learning)."""

    @property
    def transactions_per_second(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, object]:
        """Settings and throughput, to stand beside the metrics in a report."""
        feedback = self.options.feedback
        return {
            "learner": self.options.learner,
            "params": dict(self.options.params),
            "label_delay_days": self.options.label_delay / timedelta(days=1),
            "feedback_cards_per_day": None if feedback is None else feedback.cards_per_day,
            "feedback_delay_days": None
            if feedback is None
            else feedback.delay_seconds / timedelta(days=1).total_seconds(),
            "transactions": len(self.scores),
            "replay_seconds": round(self.seconds, 3),
            "transactions_per_second": round(self.transactions_per_second, 1),
        }


def build_detector(
    options: EvaluationOptions, *, reasons: int = 3, learner: OnlineLearner | None = None
) -> FraudDetector:
    """A detector wired as the embedded service wires it, for the given learner and delay.

    ``reasons`` changes no score; a replay that only measures scores asks for none, which
    spares the tree learners' occlusion predictions. ``learner``, when given, serves instead
    of a new one of ``options.learner``.
    """
    windows = WindowSpec(label_delay_seconds=int(options.label_delay.total_seconds()))
    features = FeatureSet(FeatureSpec(windows=windows))
    if learner is None:
        learner = OnlineLearner(options.learner, options.params, seed=options.seed)
    policy = DetectorPolicy(reasons=reasons)
    return FraudDetector(features, InMemoryFeatureState(windows), learner, policy)


def evaluate(
    dataset: LabelledDataset,
    options: EvaluationOptions,
    progress: Callable[[int], None] | None = None,
) -> EvaluationRun:
    """Replay ``dataset`` with ``options`` and measure the scores on the test period."""
    if not dataset.transactions:
        raise ValueError("the data set holds no valid transaction to replay")
    detector = build_detector(options, reasons=0)
    delay_seconds = int(options.label_delay.total_seconds())
    investigators = None if options.feedback is None else Investigators(options.feedback)
    started = time.perf_counter()
    scores = replay(
        dataset.transactions,
        dataset.is_fraud,
        detector,
        delay_seconds,
        progress,
        investigators=investigators,
    )
    seconds = time.perf_counter() - started

    timestamps = pd.to_datetime([tx.timestamp for tx in dataset.transactions], utc=True)
    frame = pd.DataFrame(
        {
            "transaction_id": [tx.transaction_id for tx in dataset.transactions],
            "timestamp": timestamps,
            "card_id": [tx.card_id for tx in dataset.transactions],
            "score": scores,
            "is_fraud": dataset.is_fraud,
            "label_known_at": timestamps + options.label_delay,
        }
    )
    if dataset.scenarios is not None:
        frame[SCENARIO_COLUMN] = dataset.scenarios
    first_day = timestamps.min().floor("D").to_pydatetime()
    start = options.test_start or first_day + WARM_UP + options.label_delay
    metrics = evaluate_scores(frame, k=options.k, start=start, end=options.test_end)
    return EvaluationRun(options=options, metrics=metrics, scores=frame, seconds=seconds)


def write_scores(run: EvaluationRun, path: Path) -> None:
    """``transaction_id,score`` for every transaction, as scored at arrival."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run.scores[["transaction_id", "score"]].to_csv(path, index=False, float_format="%.9g")
