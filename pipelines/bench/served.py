"""What each way of serving costs a transaction: the online learner alone, a retrain's batch
tree model (through its flat trees, and through scikit-learn's own calls for reference), and
their blend with either part giving the reasons.

Every model is timed on the same stored vectors in one process, interleaved round by round, so
their ratios hold on a machine whose speed drifts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.batch_model import BatchLearner, BatchSpec, train_batch
from models.blend import RecentBlend
from models.blended_learner import BlendedLearner
from models.explain import FeatureVector
from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.replay import replay
from pipelines.bench.core import LABEL_DELAY, bench_stream
from pipelines.bench.run import step_counter
from pipelines.collector import settled
from pipelines.offline.evaluation import EvaluationOptions, build_detector


@dataclass(frozen=True)
class ServedCost:
    """Median cost per transaction of one way of serving, in microseconds."""

    served: str
    score_us: float
    explain_us: float | None
    """Score and three reasons (none: the reference that only scores)."""


@dataclass(frozen=True)
class _Candidate:
    served: str
    score: Callable[[int], object]
    explain: Callable[[int], object] | None


def _models(
    transactions: int, seed: int
) -> tuple[OnlineLearner, BatchLearner, list[FeatureVector], np.ndarray]:
    """The default online learner after a replay of the stream, a batch model trained on the
    stream's stored vectors, and those vectors (as dicts and as rows)."""
    stream, labels = bench_stream(transactions, seed)
    detector = build_detector(EvaluationOptions(learner=DEFAULT_LEARNER), reasons=0)
    replay(stream, labels, detector, int(LABEL_DELAY.total_seconds()))
    vectors = [detector.vector_of(tx.transaction_id) for tx in stream]
    kept = [vector for vector in vectors if vector is not None]
    names = list(detector.features.names)
    rows = np.array([[vector[name] for name in names] for vector in kept], dtype=np.float64)
    verdicts = np.array([fraud for fraud, vector in zip(labels, vectors, strict=True) if vector])
    batch = train_batch(rows, verdicts, names, BatchSpec("hgb", min_labels=100, seed=seed))
    return detector.learner, batch, kept, rows


def _calls(served: str, model: OnlineLearner, vectors: list[FeatureVector]) -> _Candidate:
    return _Candidate(
        served,
        lambda at: model.score(vectors[at]),
        lambda at: model.score_and_explain(vectors[at], 3),
    )


def _candidates(
    online: OnlineLearner, batch: BatchLearner, vectors: list[FeatureVector], rows: np.ndarray
) -> list[_Candidate]:
    return [
        _calls(f"online ({online.name})", online, vectors),
        _calls("batch (hgb, flat trees)", batch, vectors),
        _Candidate(
            "batch (hgb, scikit-learn's calls)",
            lambda at: batch.model.predict_proba(rows[at : at + 1]),
            None,
        ),
        _calls(
            "blend 0.25 (online part explains)",
            BlendedLearner(online, batch, RecentBlend(chosen=0.25)),
            vectors,
        ),
        _calls(
            "blend 0.75 (batch part explains)",
            BlendedLearner(online, batch, RecentBlend(chosen=0.75)),
            vectors,
        ),
    ]


def _per_call_us(call: Callable[[int], object], count: int) -> float:
    started = time.perf_counter_ns()
    for at in range(count):
        call(at)
    return (time.perf_counter_ns() - started) / count / 1_000


def bench_served(
    *,
    transactions: int = 20_000,
    vectors: int = 1_000,
    rounds: int = 3,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[ServedCost]:
    """Each way of serving timed on ``vectors`` stored vectors, ``rounds`` interleaved rounds;
    the medians."""
    online, batch, kept, rows = _models(transactions, seed)
    count = min(vectors, len(kept))
    if count == 0:
        raise ValueError("the stream left no vector to score")
    candidates = _candidates(online, batch, kept, rows)
    scores: dict[str, list[float]] = {candidate.served: [] for candidate in candidates}
    explains: dict[str, list[float]] = {candidate.served: [] for candidate in candidates}
    on_round = step_counter(progress)
    with settled():
        for _ in range(rounds):
            for candidate in candidates:
                scores[candidate.served].append(_per_call_us(candidate.score, count))
                if candidate.explain is not None:
                    explains[candidate.served].append(_per_call_us(candidate.explain, count))
            on_round()
    return [
        ServedCost(
            candidate.served,
            statistics.median(scores[candidate.served]),
            statistics.median(explains[candidate.served]) if explains[candidate.served] else None,
        )
        for candidate in candidates
    ]


def ratios_to_first(costs: Sequence[ServedCost]) -> list[float]:
    """Each way's score cost over the first's (the online learner alone)."""
    first = costs[0].score_us
    return [cost.score_us / first for cost in costs]
