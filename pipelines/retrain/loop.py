"""Evaluation with the scheduled batch retrain in the loop.

The data set is replayed as `pipelines.offline.evaluation` replays it (same detector, labels
revealed ``delay`` late), and every labelled example the learner learns goes to an in-memory
offline store exactly as the service's learning paths write it. Every ``every`` of event time
(anchored on the test period's start) the retrain job (`pipelines.retrain.job.retrain`, the
code behind ``fraudstream retrain`` and ``POST /v1/retrain``) runs on that store at that moment,
so each model is trained only on the labels known by then.

What each transaction is scored with:

- ``served="batch"``: the latest batch model at the transaction's arrival (the online
  learner's score before the first one);
- ``served="champion"``: the served champion, under the promotion policy: a candidate whose
  hold-out AP beats the champion's recorded scores by the margin becomes the champion,
  otherwise it is only a challenger. The online learner keeps learning all along (displaced by
  a batch champion, it shadows it), as the service does.
- ``served="blend"``: both, as `models.blend` combines them: at each retrain the batch model's
  weight is chosen on the hold-out, from the online learner's scores recorded there and the
  candidate's back-test scores, and the latest batch model is blended with the online learner
  at that weight until the next retrain.

Batch scores are computed in bulk at each retrain for the transactions since the previous one,
each with the model that was serving when it arrived: a row's score does not depend on the rows
scored beside it (`BatchLearner.predict_many`), so these are the scores the service would have
given, and the hold-out comparisons use the scores each transaction really got.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.batch_model import BatchLearner
from models.blend import best_weight, blend
from models.period_metrics import SCENARIO_COLUMN, EvaluationMetrics, evaluate_scores
from models.replay import revealed_label
from models.schemas import Label
from models.state import event_second
from pipelines.offline.datasets import LabelledDataset
from pipelines.offline.evaluation import WARM_UP, EvaluationOptions, build_detector
from pipelines.retrain.job import RetrainError, RetrainOptions, RetrainResult, retrain
from pipelines.retrain.offline_store import MemoryOfflineStore

Served = Literal["champion", "batch", "blend"]


@dataclass(frozen=True)
class RetrainStep:
    """One scheduled retrain of the replay: its figures and decision, or why it failed."""

    at: datetime
    decision: str
    """``promote``, ``challenger``, ``blend W`` (the batch model's weight) or ``failed``."""
    detail: str = ""
    candidate_ap: float = float("nan")
    champion_ap: float = float("nan")
    candidate_cp: float = float("nan")
    champion_cp: float = float("nan")
    training_rows: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "decision": self.decision,
            "detail": self.detail,
            "candidate_holdout_ap": _finite(self.candidate_ap),
            "champion_holdout_ap": _finite(self.champion_ap),
            "candidate_holdout_cp": _finite(self.candidate_cp),
            "champion_holdout_cp": _finite(self.champion_cp),
            "training_rows": self.training_rows,
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


@dataclass(frozen=True)
class LoopRun:
    """The outcome: served scores measured, the online learner's beside them, each retrain."""

    served: Served
    metrics: EvaluationMetrics
    online_metrics: EvaluationMetrics
    scores: pd.DataFrame
    """One row per transaction: id, timestamp, card, served ``score``, ``online_score``, label,
    label known at."""
    steps: list[RetrainStep] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "served": self.served,
            "transactions": len(self.scores),
            "seconds": round(self.seconds, 1),
            "retrains": [step.to_dict() for step in self.steps],
            "online": self.online_metrics.to_dict(),
        }


def _boundaries(first: datetime, last: datetime, anchor: datetime, every: timedelta) -> list[Any]:
    moment = anchor
    while moment - every > first:
        moment -= every
    bounds = []
    while moment <= last:
        bounds.append(moment)
        moment += every
    return bounds


def evaluate_with_retrain(  # noqa: PLR0915 - one replay loop, kept whole for reading
    dataset: LabelledDataset,
    evaluation: EvaluationOptions,
    options: RetrainOptions,
    every: timedelta,
    served: Served = "champion",
    progress: Callable[[int], None] | None = None,
    on_step: Callable[[RetrainStep], None] | None = None,
) -> LoopRun:
    """Replay ``dataset`` with a retrain every ``every`` of event time; see the module."""
    transactions = dataset.transactions
    if not transactions:
        raise ValueError("the data set holds no valid transaction to replay")
    if every <= timedelta(0):
        raise ValueError("the retrain period must be positive")
    started = time.perf_counter()
    detector = build_detector(evaluation, reasons=0)
    store = MemoryOfflineStore(detector.features.names)
    delay_seconds = int(evaluation.label_delay.total_seconds())
    first_day = transactions[0].timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    test_start = evaluation.test_start or first_day + WARM_UP + evaluation.label_delay
    bounds = deque(_boundaries(first_day, transactions[-1].timestamp, test_start, every))
    if evaluation.test_end is not None:
        # A model trained after the test period scores nothing that is measured.
        bounds = deque(moment for moment in bounds if moment < evaluation.test_end)
    if served != "champion":
        # Only the latest model serves: retrains before the test period's own cannot reach it.
        while len(bounds) > 1 and bounds[1] <= test_start:
            bounds.popleft()

    count = len(transactions)
    online = np.empty(count)
    scores = np.empty(count)
    position = {tx.transaction_id: index for index, tx in enumerate(transactions)}
    segment: list[array[float]] = []
    segment_start = 0
    model: BatchLearner | None = None
    weight = 1.0
    """The batch model's weight in the blend (``served="blend"`` only)."""
    steps: list[RetrainStep] = []
    keep = options.delay * 2 + timedelta(days=options.train_days + options.test_days + 1)

    def close_segment(end: int) -> None:
        nonlocal segment, segment_start
        if model is None:
            scores[segment_start:end] = online[segment_start:end]
        elif segment:
            batch = model.predict_many(np.array(segment, dtype=np.float64))
            scores[segment_start:end] = (
                blend(online[segment_start:end], batch, weight) if served == "blend" else batch
            )
        segment, segment_start = [], end

    class ServedSource:
        """The store as the job reads it, with each row's score as it was served."""

        feature_names = store.feature_names

        @staticmethod
        def read(start: datetime, end: datetime, known_by: datetime | None = None) -> Any:
            rows = store.read(start, end, known_by)
            at = rows["transaction_id"].map(position).to_numpy(dtype=np.int64)
            # A blend is measured against the online learner alone, whose scores it weighs.
            return rows.assign(score=(online if served == "blend" else scores)[at])

    def run_job(now: datetime, end: int) -> None:
        nonlocal model, weight
        close_segment(end)
        store.forget_before(now - keep)
        try:
            result: RetrainResult = retrain(ServedSource(), now, options)
        except RetrainError as error:
            step = RetrainStep(now, "failed", str(error))
        else:
            if served == "blend":
                holdout = result.holdout
                weight = best_weight(
                    holdout["is_fraud"], holdout["score"], holdout["candidate_score"]
                )
            step = RetrainStep(
                now,
                f"blend {weight:g}"
                if served == "blend"
                else ("promote" if result.promote else "challenger"),
                candidate_ap=result.candidate.mean_weekly_average_precision,
                champion_ap=result.champion.mean_weekly_average_precision,
                candidate_cp=result.candidate.mean_weekly_card_precision_at_k,
                champion_cp=result.champion.mean_weekly_card_precision_at_k,
                training_rows=result.rows["final"],
            )
            # Batch mode serves the latest model whatever it measured; otherwise the candidate
            # serves only if promoted (a batch champion is replaced by the same rule).
            if served != "champion" or result.promote:
                model = result.model
        steps.append(step)
        if on_step is not None:
            on_step(step)

    due: deque[tuple[int, Label]] = deque()
    pending = detector.pending
    for index, (tx, fraud) in enumerate(zip(transactions, dataset.is_fraud, strict=True)):
        while bounds and tx.timestamp >= bounds[0]:
            run_job(bounds.popleft(), index)
        second = event_second(tx.timestamp)
        revealed: list[Label] = []
        while due and due[0][0] <= second:
            revealed.append(due.popleft()[1])
        if revealed:
            detector.learn(revealed, on_learned=store.append)
        online[index] = detector.score(tx).score
        entry = pending.get(tx.transaction_id)
        assert entry is not None
        segment.append(entry.values)
        due.append((second + delay_seconds, revealed_label(tx, fraud, evaluation.label_delay)))
        if progress is not None and (index + 1) % 10_000 == 0:
            progress(index + 1)
    close_segment(count)
    if progress is not None:
        progress(count)

    timestamps = pd.to_datetime([tx.timestamp for tx in transactions], utc=True)
    frame = pd.DataFrame(
        {
            "transaction_id": [tx.transaction_id for tx in transactions],
            "timestamp": timestamps,
            "card_id": [tx.card_id for tx in transactions],
            "score": scores,
            "online_score": online,
            "is_fraud": dataset.is_fraud,
            "label_known_at": timestamps + evaluation.label_delay,
        }
    )
    if dataset.scenarios is not None:
        frame[SCENARIO_COLUMN] = dataset.scenarios
    end = evaluation.test_end
    metrics = evaluate_scores(frame, k=evaluation.k, start=test_start, end=end)
    online_metrics = evaluate_scores(
        frame.assign(score=online), k=evaluation.k, start=test_start, end=end
    )
    return LoopRun(
        served=served,
        metrics=metrics,
        online_metrics=online_metrics,
        scores=frame,
        steps=steps,
        seconds=time.perf_counter() - started,
    )
