"""What the core costs per transaction, next to what the bare river model costs.

Both are measured in the same process on the same simulated stream, interleaved round by
round, so the ratio holds even on a shared, noisy machine where absolute figures drift.
Each learner is measured as a serving one runs: trained first on a stream of its own, so a
learner that starts simple and grows (the binned learner's bins and crosses come at the end of
its warm-up) is measured at its full cost.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from models.detector import FraudDetector
from models.learners import OnlineLearner
from models.replay import replay, revealed_label
from models.schemas import Label, Transaction
from models.simulator import SimulationConfig, simulate
from models.state import event_second
from pipelines.bench.run import step_counter
from pipelines.collector import settled
from pipelines.offline.datasets import dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions, build_detector

LABEL_DELAY = timedelta(days=7)

TRAINING_TRANSACTIONS = 20_000
"""Enough for the default learner's warm-up (10,000 labels, 50 of them frauds) with a week's
delay: the simulated stream's first two weeks of labels hold about 12,800, 400 of them frauds."""


@dataclass(frozen=True)
class CoreBenchRow:
    """Median cost per transaction of one learner, in microseconds, and its throughput."""

    learner: str
    features_us: float
    score_us: float
    learn_us: float
    bare_model_us: float
    """The river model alone: ``predict_proba_one`` + ``learn_one`` on the same vectors."""
    transactions_per_second: float
    """The whole path without timers: features, score and learn, in one process."""

    @property
    def whole_path_us(self) -> float:
        return self.features_us + self.score_us + self.learn_us

    @property
    def overhead_ratio(self) -> float:
        """Whole path over bare model: what features, reasons and bookkeeping add."""
        return self.whole_path_us / self.bare_model_us


def bench_stream(transactions: int, seed: int) -> tuple[list[Transaction], list[bool]]:
    """A simulated stream of ``transactions`` rows over three weeks, with its labels.

    Three weeks, so that labels revealed a week late are learned for two of them.
    """
    days = 21
    # The process makes about two transactions per card and day.
    customers = max(50, transactions // (2 * days) + 1)
    frame = simulate(
        SimulationConfig(
            customers=customers,
            terminals=2 * customers,
            days=days,
            start_date=date(2018, 4, 1),
            seed=seed,
        )
    )
    dataset = dataset_from_frame(frame.head(transactions))
    return dataset.transactions, dataset.is_fraud


def trained_learner(name: str, transactions: int, seed: int) -> OnlineLearner:
    """The learner after replaying a simulated stream of ``transactions`` (seed ``seed``),
    labels a week late."""
    stream, labels = bench_stream(transactions, seed)
    detector = build_detector(EvaluationOptions(learner=name, seed=seed), reasons=0)
    replay(stream, labels, detector, int(LABEL_DELAY.total_seconds()))
    return detector.learner


def _median_us(samples: Sequence[int]) -> float:
    return statistics.median(samples) / 1_000


@dataclass(frozen=True)
class _Medians:
    features_us: float
    score_us: float
    learn_us: float
    bare_model_us: float


def _detector(trained: OnlineLearner) -> FraudDetector:
    """A detector with fresh feature state around a copy of ``trained``."""
    return build_detector(EvaluationOptions(learner=trained.name), learner=copy.deepcopy(trained))


def _timed_path(
    trained: OnlineLearner, stream: Sequence[Transaction], labels: Sequence[bool]
) -> _Medians:
    """Median costs of the whole path, with the bare river model timed beside it.

    The bare model (a copy of the trained learner's) predicts on the very vector the detector
    scored, right after it, and learns its label right after the detector does, so both sides
    of the ratio are measured under the same conditions on a machine whose speed drifts.
    """
    detector = _detector(trained)
    bare = copy.deepcopy(trained.model)
    clock = time.perf_counter_ns
    delay = int(LABEL_DELAY.total_seconds())
    due: deque[tuple[int, Label, dict[str, float]]] = deque()
    features_ns: list[int] = []
    score_ns: list[int] = []
    learn_ns: list[int] = []
    bare_predict_ns: list[int] = []
    bare_learn_ns: list[int] = []
    for tx, is_fraud in zip(stream, labels, strict=True):
        second = event_second(tx.timestamp)
        while due and due[0][0] <= second:
            _, label, vector = due.popleft()
            started = clock()
            detector.learn([label])
            middle = clock()
            bare.learn_one(vector, label.is_fraud)
            bare_learn_ns.append(clock() - middle)
            learn_ns.append(middle - started)
        started = clock()
        [aggregates] = detector.state.observe([tx])
        vector = detector.features.vector(tx, aggregates)
        middle = clock()
        detector.score_vector(tx, aggregates.duplicate, vector)
        scored = clock()
        bare.predict_proba_one(vector)
        bare_predict_ns.append(clock() - scored)
        score_ns.append(scored - middle)
        features_ns.append(middle - started)
        due.append((second + delay, revealed_label(tx, is_fraud, LABEL_DELAY), vector))
    return _Medians(
        _median_us(features_ns),
        _median_us(score_ns),
        _median_us(learn_ns),
        _median_us(bare_predict_ns) + _median_us(bare_learn_ns),
    )


def _throughput(
    trained: OnlineLearner, stream: Sequence[Transaction], labels: Sequence[bool]
) -> float:
    detector = _detector(trained)
    started = time.perf_counter()
    replay(stream, labels, detector, int(LABEL_DELAY.total_seconds()))
    return len(stream) / (time.perf_counter() - started)


_Round = tuple[float, float, float, float, float]
"""One round of one learner: features, score, learn and bare model (µs), and tx/s."""


def _round(trained: OnlineLearner, stream: Sequence[Transaction], labels: Sequence[bool]) -> _Round:
    medians = _timed_path(trained, stream, labels)
    return (
        medians.features_us,
        medians.score_us,
        medians.learn_us,
        medians.bare_model_us,
        _throughput(trained, stream, labels),
    )


def _row(name: str, runs: Sequence[_Round]) -> CoreBenchRow:
    """One learner's medians over its rounds."""
    features, score, learn, bare, throughput = (
        statistics.median(column) for column in zip(*runs, strict=True)
    )
    return CoreBenchRow(name, features, score, learn, bare, throughput)


def bench_core(
    learners: Sequence[str],
    *,
    transactions: int = 20_000,
    rounds: int = 3,
    seed: int = 0,
    training_transactions: int = TRAINING_TRANSACTIONS,
    progress: Callable[[int], None] | None = None,
) -> list[CoreBenchRow]:
    """Measure each learner ``rounds`` times, interleaving whole path and bare model, each
    trained first on ``training_transactions`` of a stream of its own (seed ``seed + 1``).

    Every round measures every learner in turn, so that each learner's medians span the whole
    run and their ratios hold on a machine whose speed drifts.
    """
    stream, labels = bench_stream(transactions, seed)
    trained = [trained_learner(name, training_transactions, seed + 1) for name in learners]
    on_round = step_counter(progress)
    runs: list[list[_Round]] = [[] for _ in trained]
    # Under the collector the serving processes run with: the stream and the trained learners
    # live for the whole run (frozen out of the collector's scans), and young collections are
    # as rare as in `serve`.
    with settled():
        for _ in range(rounds):
            for learner, measured in zip(trained, runs, strict=True):
                measured.append(_round(learner, stream, labels))
                on_round()
    return [_row(learner.name, measured) for learner, measured in zip(trained, runs, strict=True)]
