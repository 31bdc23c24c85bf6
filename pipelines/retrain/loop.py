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
- ``served="blend"``: both, as ``FRAUDSTREAM_RETRAIN_SERVE=blend`` serves them: at the first
  retrain the online learner and the batch model become one `models.blended_learner`
  champion, whose batch part each later retrain replaces; each transaction is scored by it as
  the service would, and the blend is chosen as it chooses (the retrain's hold-out first, then
  every hour on the labels of the last days, each scored by both parts as it arrives).

Every run also measures its two parts alone: the online learner, and the batch part (the
latest batch model trained, whether or not it serves; the online learner's score before the
first).

Batch scores are computed in bulk at each retrain for the transactions since the previous one,
each with the model that was serving when it arrived: a row's score does not depend on the rows
scored beside it (`BatchLearner.predict_many`), so these are the scores the service would have
given, and the hold-out comparisons use the scores each transaction really got. A blend is
scored at arrival instead, as its choice moves between retrains.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.batch_model import BatchLearner
from models.blend import Blend, RecentBlend, blend_name
from models.blended_learner import BlendedLearner, serve_blended
from models.detector import FraudDetector
from models.period_metrics import SCENARIO_COLUMN, EvaluationMetrics, evaluate_scores
from models.replay import revealed_label
from models.schemas import Label
from models.state import event_second
from pipelines.offline.datasets import LabelledDataset
from pipelines.offline.evaluation import WARM_UP, EvaluationOptions, build_detector
from pipelines.retrain.job import RetrainError, RetrainOptions, RetrainResult, retrain
from pipelines.retrain.loop_run import LoopRun, RetrainStep, Served
from pipelines.retrain.offline_store import MemoryOfflineStore


def schedule(
    first: datetime,
    last: datetime,
    test_start: datetime,
    test_end: datetime | None,
    every: timedelta,
    served: Served,
) -> deque[datetime]:
    """The retrain moments: every ``every`` from the test start, back to the first day and on
    to the last transaction, none at or after the test end (it would score nothing measured).

    Only a champion can serve from a retrain before the test period's own; in the other modes
    the latest model serves, so those are dropped.
    """
    moment = test_start
    while moment - every > first:
        moment -= every
    bounds: deque[datetime] = deque()
    while moment <= last and (test_end is None or moment < test_end):
        bounds.append(moment)
        moment += every
    if served != "champion":
        while len(bounds) > 1 and bounds[1] <= test_start:
            bounds.popleft()
    return bounds


class ServedSource:
    """The offline store as the retrain job reads it, each row with a score it was given."""

    def __init__(
        self,
        store: MemoryOfflineStore,
        position: dict[str, int],
        scores: npt.NDArray[np.float64],
    ) -> None:
        self.feature_names = store.feature_names
        self._store = store
        self._position = position
        self._scores = scores

    def read(self, start: datetime, end: datetime, known_by: datetime | None = None) -> Any:
        rows = self._store.read(start, end, known_by)
        at = rows["transaction_id"].map(self._position).to_numpy(dtype=np.int64)
        return rows.assign(score=self._scores[at])


class _Replay:
    """One replay's state: the detector, the store, the batch models, the scores given."""

    def __init__(
        self,
        dataset: LabelledDataset,
        evaluation: EvaluationOptions,
        options: RetrainOptions,
        served: Served,
        on_step: Callable[[RetrainStep], None] | None,
        recent: RecentBlend,
    ) -> None:
        self.dataset, self.evaluation, self.options = dataset, evaluation, options
        self.served, self.on_step = served, on_step
        self.detector: FraudDetector = build_detector(evaluation, reasons=0)
        self.store = MemoryOfflineStore(self.detector.features.names)
        count = len(dataset.transactions)
        self.online = np.empty(count)
        self.batch = np.empty(count)
        self.scores = np.empty(count)
        self.blend_at = np.full(count, -1, np.int8)
        """Each transaction's blend, as its index in ``recent.choices`` (-1: no batch model)."""
        position = {tx.transaction_id: index for index, tx in enumerate(dataset.transactions)}
        self.source = ServedSource(self.store, position, self.scores)
        self.segment: list[array[float]] = []
        self.segment_start = 0
        self.latest: BatchLearner | None = None
        """The latest batch model trained: the batch part."""
        self.model: BatchLearner | None = None
        """The batch model serving (the latest, or the champion's if promoted)."""
        self.recent = recent
        """The blend's choice, once a batch model has been blended in."""
        self.blends: list[tuple[datetime, Blend]] = []
        self._noted_at: int | None = None
        self.steps: list[RetrainStep] = []
        self.keep = options.delay * 2 + timedelta(days=options.train_days + options.test_days + 1)

    def arrive(self, index: int, second: int, revealed: list[Label]) -> None:
        """Learn the labels due by now, then score transaction ``index``."""
        detector = self.detector
        if revealed:
            detector.learn(revealed, on_learned=self.store.append)
            self._note_choice()  # a blend chooses as labels arrive
        tx = self.dataset.transactions[index]
        score = detector.score(tx).score
        entry = detector.pending.get(tx.transaction_id)
        assert entry is not None
        self.segment.append(entry.values)
        learner = detector.learner
        if not isinstance(learner, BlendedLearner):
            self.online[index] = score
            return
        # Served as the service serves it; its parts' scores kept to measure each alone.
        self.scores[index] = score
        names = detector.features.names
        self.online[index] = learner.online.score(dict(zip(names, entry.values, strict=True)))
        self.blend_at[index] = self.recent.choices.index(learner.chosen)

    def _note_choice(self) -> None:
        """Record the blend's latest choice, once."""
        recent = self.recent
        at = recent.chosen_at
        if at is not None and at != self._noted_at:
            self._noted_at = at
            self.blends.append((datetime.fromtimestamp(at, UTC), recent.chosen))

    def close_segment(self, end: int) -> None:
        """Score the transactions since the last retrain with the batch models of their time."""
        start, segment = self.segment_start, self.segment
        online = self.online[start:end]
        if self.latest is None or not segment:
            self.batch[start:end] = online
            self.scores[start:end] = online
        else:
            vectors = np.array(segment, dtype=np.float64)
            batch = self.latest.predict_many(vectors)
            self.batch[start:end] = batch
            if self.served != "blend":  # a blend's transactions were scored at arrival
                self.scores[start:end] = self._by_serving_model(online, batch, vectors)
        self.segment, self.segment_start = [], end

    def _by_serving_model(
        self,
        online: npt.NDArray[np.float64],
        latest: npt.NDArray[np.float64],
        vectors: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """The scores of the model serving: the online learner's, the latest batch model's,
        or a promoted earlier one's."""
        if self.model is None:
            return online
        if self.model is self.latest:
            return latest
        return self.model.predict_many(vectors)

    def retrain(self, now: datetime, end: int) -> None:
        """Run the retrain job as of ``now``; transactions from ``end`` on see its outcome."""
        self.close_segment(end)
        self.store.forget_before(now - self.keep)
        try:
            result: RetrainResult = retrain(self.source, now, self.options)
        except RetrainError as error:
            step = RetrainStep(now, "failed", str(error))
        else:
            step = self._adopt(now, result)
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def _adopt(self, now: datetime, result: RetrainResult) -> RetrainStep:
        self.latest = result.model
        # Batch mode serves the latest model whatever it measured; otherwise the candidate
        # serves only if promoted (a batch champion is replaced by the same rule).
        if self.served != "champion" or result.promote:
            self.model = result.model
        if self.served == "blend":
            # As `FRAUDSTREAM_RETRAIN_SERVE=blend` serves it: the hold-out's choice until the
            # recent labels hold enough frauds, which they may already.
            learner = serve_blended(
                self.detector, result.model, result.holdout_blend, event_second(now), self.recent
            )
            self._note_choice()
            decision = f"blend {blend_name(learner.chosen)}"
        else:
            decision = "promote" if result.promote else "challenger"
        return RetrainStep(
            now,
            decision,
            candidate_ap=result.candidate.mean_weekly_average_precision,
            champion_ap=result.champion.mean_weekly_average_precision,
            candidate_cp=result.candidate.mean_weekly_card_precision_at_k,
            champion_cp=result.champion.mean_weekly_card_precision_at_k,
            training_rows=result.rows["final"],
        )

    def frame(self) -> pd.DataFrame:
        dataset, transactions = self.dataset, self.dataset.transactions
        timestamps = pd.to_datetime([tx.timestamp for tx in transactions], utc=True)
        frame = pd.DataFrame(
            {
                "transaction_id": [tx.transaction_id for tx in transactions],
                "timestamp": timestamps,
                "card_id": [tx.card_id for tx in transactions],
                "score": self.scores,
                "online_score": self.online,
                "batch_score": self.batch,
                "is_fraud": dataset.is_fraud,
                "label_known_at": timestamps + self.evaluation.label_delay,
            }
        )
        if self.served == "blend":
            # The last name, None, is taken by the rows served before any batch model (-1).
            names = np.array([*map(blend_name, self.recent.choices), None], dtype=object)
            frame["blend"] = names[self.blend_at]
        if dataset.scenarios is not None:
            frame[SCENARIO_COLUMN] = dataset.scenarios
        return frame


def evaluate_with_retrain(
    dataset: LabelledDataset,
    evaluation: EvaluationOptions,
    options: RetrainOptions,
    every: timedelta,
    served: Served = "champion",
    progress: Callable[[int], None] | None = None,
    on_step: Callable[[RetrainStep], None] | None = None,
    recent: RecentBlend | None = None,
) -> LoopRun:
    """Replay ``dataset`` with a retrain every ``every`` of event time; see the module.

    ``recent`` chooses the blend between retrains (default: `RecentBlend`'s).
    """
    transactions = dataset.transactions
    if not transactions:
        raise ValueError("the data set holds no valid transaction to replay")
    if every <= timedelta(0):
        raise ValueError("the retrain period must be positive")
    started = time.perf_counter()
    first_day = transactions[0].timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    test_start = evaluation.test_start or first_day + WARM_UP + evaluation.label_delay
    bounds = schedule(
        first_day, transactions[-1].timestamp, test_start, evaluation.test_end, every, served
    )
    replay = _Replay(dataset, evaluation, options, served, on_step, recent or RecentBlend())
    delay_seconds = int(evaluation.label_delay.total_seconds())
    due: deque[tuple[int, Label]] = deque()
    for index, (tx, fraud) in enumerate(zip(transactions, dataset.is_fraud, strict=True)):
        while bounds and tx.timestamp >= bounds[0]:
            replay.retrain(bounds.popleft(), index)
        second = event_second(tx.timestamp)
        revealed: list[Label] = []
        while due and due[0][0] <= second:
            revealed.append(due.popleft()[1])
        replay.arrive(index, second, revealed)
        due.append((second + delay_seconds, revealed_label(tx, fraud, evaluation.label_delay)))
        if progress is not None and (index + 1) % 10_000 == 0:
            progress(index + 1)
    replay.close_segment(len(transactions))
    if progress is not None:
        progress(len(transactions))

    frame = replay.frame()
    end = evaluation.test_end

    def measured(column: str) -> EvaluationMetrics:
        return evaluate_scores(
            frame.assign(score=frame[column]), k=evaluation.k, start=test_start, end=end
        )

    return LoopRun(
        served=served,
        metrics=measured("score"),
        online_metrics=measured("online_score"),
        batch_metrics=measured("batch_score"),
        scores=frame,
        steps=replay.steps,
        blends=replay.blends,
        seconds=time.perf_counter() - started,
    )
