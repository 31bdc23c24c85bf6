"""The embedded runtime: one process scores, learns and alerts, fed by HTTP and a local queue.

Scoring and learning are river calls of microseconds, so they run inline on the event loop
(one writer, no locks); the in-process queue stands where the Kafka topic stands in distributed
mode, and `POST /v1/transactions` feeds it exactly as the topic would.

Metrics are counted once per call, not per transaction, and the state gauges are read only when
Prometheus scrapes (`gauges`), so telemetry adds a fixed cost per request or batch. The same
goes for the dashboard: the hot path only extends a bounded deque of recent scores, and the
figures are computed when the dashboard asks (`dashboard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from models.detector import CHAMPION, FraudDetector, LearnOutcome
from models.event_time import EventTimeBounds
from models.idempotency import ConflictingRepeatError
from models.quality import QualityFigures
from models.schemas import Alert, Decision, Label, Transaction
from models.scored import Scored
from pipelines.label_log import log_corrections
from pipelines.lifecycle.model_lifecycle import Lifecycle, ModelLifecycle
from pipelines.retrain.book import Retraining
from pipelines.retrain.offline_store import ExampleSink
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.dashboard import (
    AlertRate,
    QualityPoint,
    ScoreBin,
    alert_rate,
    score_histogram,
)
from pipelines.stream.scoring_batch import score_batch
from pipelines.telemetry import ModelGauges, StateGauges, Telemetry

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class QueueFullError(Exception):
    """The in-process queue is at capacity: the caller should retry later (HTTP 503)."""


@dataclass(frozen=True)
class ModelStatus:
    """What `GET /v1/models` shows of a serving model: the champion or a shadow challenger."""

    name: str
    """The champion's learner name, or the challenger's name."""
    slot: str
    """Its key among the detector's quality windows: ``champion``, or the challenger's name."""
    role: str
    version: str
    learner: str
    params: dict[str, object]
    labels_learned: int
    frauds_learned: int
    quality: QualityFigures
    """Its figures over the rolling window of matured labels (``nan`` before any)."""

    @property
    def matured_labels(self) -> int:
        return self.quality.matured

    @property
    def rolling_average_precision(self) -> float:
        """AP of the scores these transactions got at arrival, against their matured labels."""
        return self.quality.average_precision


@dataclass(frozen=True)
class DashboardSnapshot:
    """What `GET /v1/dashboard` shows: the figures no other endpoint gives, taken at ``at``."""

    at: datetime
    model: ModelStatus
    transactions_scored: int
    alerts_raised: int
    threshold: float
    """The alert threshold in force now (it moves when an alert budget is set)."""
    scores: int
    """Recent scores the histogram counts."""
    histogram: list[ScoreBin]
    alert_rate: AlertRate
    quality: list[QualityPoint]
    """The live model's rolling AP as sampled over time, oldest first."""


class EmbeddedRuntime:
    """Scores, learns and alerts for one process; owns the in-process transaction queue."""

    def __init__(
        self,
        detector: FraudDetector,
        alerts: AlertLog,
        *,
        queue_size: int = 100_000,
        score_window: int = 5_000,
        quality_history: int = 720,
        clock: Clock = utc_now,
        telemetry: Telemetry | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.detector = detector
        self.lifecycle = lifecycle
        """Snapshots, promotion and audit through the model registry (none: not kept)."""
        self.resumed = False
        """Whether the models and state were resumed from a snapshot at start-up."""
        self.offline: ExampleSink | None = None
        """Where learned labels are written for batch retraining (none: not kept)."""
        self.retrain: Retraining | None = None
        """The batch retrain jobs, here or asked of the learner (none: not available)."""
        self.event_time: EventTimeBounds | None = None
        """Bounds on the timestamps clients send, against this runtime's clock (none: any)."""
        self.alerts = alerts
        self.telemetry = telemetry or Telemetry()
        self.telemetry.watch(self.gauges)
        self._clock = clock
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue(maxsize=queue_size)
        self._consumer: asyncio.Task[None] | None = None
        self.scored = 0
        self.started_at: datetime | None = None
        self.recent_scores: deque[float] = deque(maxlen=score_window)
        """The last scores given, for the dashboard's distribution."""
        self.quality: deque[QualityPoint] = deque(maxlen=quality_history)
        """Samples of the live model's rolling AP (`sample_quality`), oldest first."""

    @property
    def ready(self) -> bool:
        """Model and state are loaded and the queue is being consumed."""
        return self._consumer is not None and not self._consumer.done()

    @property
    def unready_reason(self) -> str:
        """What `ready` waits for, said to a client that asked too early."""
        return "the model and feature state are still loading"

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def input_context(self) -> dict[str, Any] | None:
        """The validation context for a request arriving now: the event times it may carry."""
        bounds = self.event_time
        return None if bounds is None else bounds.window(self._clock()).context()

    async def score_request(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """`score`, for a request: here inline, on the event loop (memory state answers in
        microseconds); a runtime whose state is remote scores off the loop."""
        return self.score(transactions)

    def score(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Score in order, publish the alerts they raise, and return the scores."""
        scored, alerts = self._score_and_alert(transactions)
        self.publish(transactions, scored, alerts)
        return scored

    def _score_and_alert(
        self, transactions: Sequence[Transaction]
    ) -> tuple[list[Scored], list[Alert]]:
        started = time.perf_counter()
        learner = self.detector.learner
        # Scoring moves event time on, which may learn matured transactions as legitimate.
        learned_before = learner.labels_learned
        scored = score_batch(self.detector, list(transactions)).scored
        self.scored += len(scored)
        self.recent_scores.extend([result.score for result in scored])
        # A replay's alert was raised with its first answer.
        alerts = [
            self._alert(tx, result)
            for tx, result in zip(transactions, scored, strict=True)
            if result.decision is Decision.ALERT and not result.replayed
        ]
        self.telemetry.scored(len(scored), time.perf_counter() - started, len(alerts))
        self.telemetry.learned(learner.labels_learned - learned_before)
        return scored, alerts

    def publish(
        self, transactions: Sequence[Transaction], scored: Sequence[Scored], alerts: list[Alert]
    ) -> None:
        """Where the scores and alerts of `score` go: here, the alert log and its stream."""
        if alerts:
            self.alerts.publish(alerts)

    async def accept(self, transactions: Sequence[Transaction]) -> None:
        """Take transactions for asynchronous scoring (`POST /v1/transactions`), all or none;
        `ConflictingRepeatError` if one reuses a scored id with other content."""
        self.detector.refuse_conflicting(transactions)
        self.submit(transactions)

    async def take_labels(self, labels: Sequence[Label]) -> LearnOutcome | None:
        """Learn labels now and say how (``None`` where another process learns them)."""
        return self.learn(labels)

    def learn(self, labels: Sequence[Label]) -> LearnOutcome:
        """Learn labels from the vectors their transactions were scored with."""
        offline = self.offline
        if offline is None:
            outcome = self.detector.learn(labels)
        else:
            outcome = self.detector.learn(labels, on_learned=offline.append)
            # Written before the labels are acknowledged: an answered label is never lost.
            offline.flush()
        self.telemetry.learned(outcome.learned)
        log_corrections(outcome)
        return outcome

    def submit(self, transactions: Sequence[Transaction]) -> None:
        """Queue transactions for asynchronous scoring, all or none."""
        if self._queue.maxsize - self._queue.qsize() < len(transactions):
            raise QueueFullError(f"the transaction queue is full ({self._queue.maxsize})")
        for tx in transactions:
            self._queue.put_nowait(tx)

    def model_status(self) -> ModelStatus:
        """The champion's status."""
        return self.model_statuses()[0]

    def model_statuses(self) -> list[ModelStatus]:
        """The champion, then each shadow challenger, with their rolling quality."""
        detector = self.detector
        threshold = detector.alerting.threshold
        serving = [(CHAMPION, detector.learner), *detector.challengers.items()]
        return [
            ModelStatus(
                name=learner.name if role == CHAMPION else role,
                slot=role,
                role=CHAMPION if role == CHAMPION else "challenger",
                version=learner.version,
                learner=learner.name,
                params=dict(learner.params),
                labels_learned=learner.labels_learned,
                frauds_learned=learner.frauds_learned,
                quality=detector.quality[role].figures(threshold),
            )
            for role, learner in serving
        ]

    def sample_quality(self) -> None:
        """Add the serving models' rolling AP, as of now, to the quality history."""
        champion, *challengers = self.model_statuses()
        self.quality.append(
            QualityPoint(
                self._clock(),
                champion.rolling_average_precision,
                {status.name: status.rolling_average_precision for status in challengers},
            )
        )

    def dashboard(self, *, bins: int = 20, minutes: int = 15) -> DashboardSnapshot:
        """The score distribution, the alert rate over ``minutes`` and the quality history."""
        now = self._clock()
        raised = self.alerts.recent(
            since=now - timedelta(minutes=minutes), limit=len(self.alerts) or 1
        )
        # Alert times are complete from the start, or from the oldest alert the log still holds
        # once it has dropped older ones: before that a minute is unknown, not quiet.
        observed_since = self.started_at or now
        if (complete_since := self.alerts.complete_since) is not None:
            observed_since = max(observed_since, complete_since)
        return DashboardSnapshot(
            at=now,
            model=self.model_status(),
            transactions_scored=self.scored,
            alerts_raised=self.alerts.published,
            threshold=self.detector.alerting.threshold,
            scores=len(self.recent_scores),
            histogram=score_histogram(self.recent_scores, bins),
            alert_rate=alert_rate(
                (alert.raised_at for alert in raised),
                now=now,
                minutes=minutes,
                observed_since=observed_since,
            ),
            quality=list(self.quality),
        )

    def gauges(self) -> StateGauges:
        """The state Prometheus reads at each scrape."""
        return StateGauges(
            consumer_lag=self.backlog,
            label_backlog=self.detector.pending.awaiting_label or 0,
            models=tuple(
                ModelGauges(
                    name=status.name,
                    version=status.version,
                    role=status.role,
                    rolling_average_precision=status.quality.average_precision,
                    rolling_card_precision_at_k=status.quality.card_precision_at_k,
                )
                for status in self.model_statuses()
            ),
        )

    async def start(self) -> None:
        self.started_at = self._clock()
        self._consumer = asyncio.create_task(self._consume(), name="transaction-queue")

    async def stop(self) -> None:
        """Stop consuming and, where this process owns the models, take the final snapshot:
        a clean stop loses nothing learned or scored."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        if isinstance(self.lifecycle, ModelLifecycle):
            self.lifecycle.stop()

    async def drain(self) -> None:
        """Wait until every queued transaction has been scored (tests, shutdown)."""
        await self._queue.join()

    async def _consume(self, batch: int = 500) -> None:
        while True:
            first = await self._queue.get()
            transactions = [first]
            while len(transactions) < batch and not self._queue.empty():
                transactions.append(self._queue.get_nowait())
            try:
                self._score_queued(transactions)
            except Exception:
                # One bad batch must not stop the queue; the error is a bug and is logged.
                logger.exception(
                    "scoring a queued batch of %d failed",
                    len(transactions),
                    extra={"model_version": self.detector.model_version},
                )
            finally:
                for _ in transactions:
                    self._queue.task_done()
            await asyncio.sleep(0)

    def _score_queued(self, transactions: list[Transaction]) -> None:
        """`score` for the queue, where nobody waits for a 409: a repeated id with other
        content than first scored is left out, with a warning, and the rest are scored."""
        try:
            self.score(transactions)
        except ConflictingRepeatError as error:
            logger.warning("queued transactions refused: %s", error)
            refused = set(error.positions)
            self.score([tx for i, tx in enumerate(transactions) if i not in refused])

    def _alert(self, tx: Transaction, result: Scored) -> Alert:
        return Alert(
            transaction=tx,
            score=result.score,
            model_version=result.model_version,
            threshold=result.threshold,
            reasons=tuple(reason.to_contract() for reason in result.reasons),
            raised_at=self._clock(),
        )
