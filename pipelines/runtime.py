"""The embedded runtime: one process scores, learns and alerts, fed by HTTP and a local queue.

Scoring and learning are river calls of microseconds, so they run inline on the event loop
(one writer, no locks); the in-process queue stands where the Kafka topic stands in distributed
mode, and `POST /v1/transactions` feeds it exactly as the topic would.

Metrics are counted once per call, not per transaction, and the state gauges are read only when
Prometheus scrapes (`gauges`), so telemetry adds a fixed cost per request or batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from models.detector import FraudDetector, LearnOutcome
from models.metrics import average_precision
from models.schemas import Alert, Decision, Label, Transaction
from models.scored import Scored
from pipelines.alert_log import AlertLog
from pipelines.telemetry import ModelGauges, StateGauges, Telemetry

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class QueueFullError(Exception):
    """The in-process queue is at capacity: the caller should retry later (HTTP 503)."""


@dataclass(frozen=True)
class ModelStatus:
    """What `GET /v1/models` shows of a live model."""

    name: str
    version: str
    params: dict[str, object]
    labels_learned: int
    frauds_learned: int
    matured_labels: int
    """Labels in the rolling window the quality figures are taken over."""
    rolling_average_precision: float
    """AP of the scores these transactions got at arrival, against their matured labels."""


class EmbeddedRuntime:
    """Scores, learns and alerts for one process; owns the in-process transaction queue."""

    def __init__(
        self,
        detector: FraudDetector,
        alerts: AlertLog,
        *,
        queue_size: int = 100_000,
        quality_window: int = 10_000,
        clock: Clock = utc_now,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.detector = detector
        self.alerts = alerts
        self.telemetry = telemetry or Telemetry()
        self.telemetry.watch(self.gauges)
        self._clock = clock
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue(maxsize=queue_size)
        self._matured: deque[tuple[float, bool]] = deque(maxlen=quality_window)
        self._consumer: asyncio.Task[None] | None = None
        self.scored = 0

    @property
    def ready(self) -> bool:
        """Model and state are loaded and the queue is being consumed."""
        return self._consumer is not None and not self._consumer.done()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def score(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Score in order, publish the alerts they raise, and return the scores."""
        started = time.perf_counter()
        learner = self.detector.learner
        # Scoring moves event time on, which may learn matured transactions as legitimate.
        learned_before = learner.labels_learned
        scored = self.detector.score_many(transactions)
        self.scored += len(scored)
        alerts = [
            self._alert(tx, result)
            for tx, result in zip(transactions, scored, strict=True)
            if result.decision is Decision.ALERT
        ]
        if alerts:
            self.alerts.publish(alerts)
        self.telemetry.scored(len(scored), time.perf_counter() - started, len(alerts))
        self.telemetry.learned(learner.labels_learned - learned_before)
        return scored

    def learn(self, labels: Sequence[Label]) -> LearnOutcome:
        """Learn labels from the vectors their transactions were scored with."""
        entries = [self.detector.pending.get(label.transaction_id) for label in labels]
        outcome = self.detector.learn(labels)
        for label, entry in zip(labels, entries, strict=True):
            if entry is not None:
                self._matured.append((entry.scored.score, label.is_fraud))
        self.telemetry.learned(outcome.learned)
        return outcome

    def submit(self, transactions: Sequence[Transaction]) -> None:
        """Queue transactions for asynchronous scoring, all or none."""
        if self._queue.maxsize - self._queue.qsize() < len(transactions):
            raise QueueFullError(f"the transaction queue is full ({self._queue.maxsize})")
        for tx in transactions:
            self._queue.put_nowait(tx)

    def model_status(self) -> ModelStatus:
        learner = self.detector.learner
        matured = list(self._matured)
        return ModelStatus(
            name=learner.name,
            version=self.detector.model_version,
            params=dict(learner.params),
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            matured_labels=len(matured),
            rolling_average_precision=average_precision(
                [label for _, label in matured], [score for score, _ in matured]
            )
            if matured
            else float("nan"),
        )

    def gauges(self) -> StateGauges:
        """The state Prometheus reads at each scrape.

        Card Precision@k is ``nan``: it ranks cards, and neither a label nor the vector kept
        for it knows the card id, so the matured window cannot rank them yet.
        """
        status = self.model_status()
        champion = ModelGauges(
            name=status.name,
            version=status.version,
            role="champion",
            rolling_average_precision=status.rolling_average_precision,
            rolling_card_precision_at_k=math.nan,
        )
        return StateGauges(
            consumer_lag=self.backlog, label_backlog=len(self.detector.pending), models=(champion,)
        )

    async def start(self) -> None:
        self._consumer = asyncio.create_task(self._consume(), name="transaction-queue")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer

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
                self.score(transactions)
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

    def _alert(self, tx: Transaction, result: Scored) -> Alert:
        return Alert(
            transaction=tx,
            score=result.score,
            model_version=result.model_version,
            threshold=result.threshold,
            reasons=tuple(reason.to_contract() for reason in result.reasons),
            raised_at=self._clock(),
        )
