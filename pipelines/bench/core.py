"""What the core costs per transaction, next to what the bare river model costs.

Both are measured in the same process on the same simulated stream, interleaved round by
round, so the ratio holds even on a shared, noisy machine where absolute figures drift.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

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


def _median_us(samples: Sequence[int]) -> float:
    return statistics.median(samples) / 1_000


@dataclass(frozen=True)
class _Medians:
    features_us: float
    score_us: float
    learn_us: float
    bare_model_us: float


def _timed_path(name: str, stream: Sequence[Transaction], labels: Sequence[bool]) -> _Medians:
    """Median costs of the whole path, with the bare river model timed beside it.

    The bare model predicts on the very vector the detector scored, right after it, and
    learns its label right after the detector does, so both sides of the ratio are measured
    under the same conditions on a machine whose speed drifts.
    """
    detector = build_detector(EvaluationOptions(learner=name))
    bare = OnlineLearner(name).model
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


def _throughput(name: str, stream: Sequence[Transaction], labels: Sequence[bool]) -> float:
    detector = build_detector(EvaluationOptions(learner=name))
    started = time.perf_counter()
    replay(stream, labels, detector, int(LABEL_DELAY.total_seconds()))
    return len(stream) / (time.perf_counter() - started)


def _row(
    name: str,
    stream: Sequence[Transaction],
    labels: Sequence[bool],
    rounds: int,
    on_round: Callable[[], None],
) -> CoreBenchRow:
    """One learner's medians over ``rounds`` interleaved rounds."""
    runs: list[tuple[float, float, float, float, float]] = []
    for _ in range(rounds):
        medians = _timed_path(name, stream, labels)
        runs.append(
            (
                medians.features_us,
                medians.score_us,
                medians.learn_us,
                medians.bare_model_us,
                _throughput(name, stream, labels),
            )
        )
        on_round()
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
    progress: Callable[[int], None] | None = None,
) -> list[CoreBenchRow]:
    """Measure each learner ``rounds`` times, interleaving whole path and bare model."""
    stream, labels = bench_stream(transactions, seed)
    on_round = step_counter(progress)
    # Under the collector the serving processes run with: the stream lives for the whole run
    # (frozen out of the collector's scans), and young collections are as rare as in `serve`.
    with settled():
        return [_row(name, stream, labels, rounds, on_round) for name in learners]
