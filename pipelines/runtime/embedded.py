"""The embedded runtime: one process scores, learns and alerts, fed by HTTP and a local queue.

Scoring and learning are river calls of microseconds, so they run inline on the event loop
(one writer, no locks); the in-process queue stands where the Kafka topic stands in distributed
mode, and `POST /v1/transactions` feeds it exactly as the topic would. This process owns the
models: it keeps their lifecycle's clock (snapshots, promotion) and runs the retrain jobs.

Metrics are counted once per call, not per transaction, and the state gauges are read only when
Prometheus scrapes (`gauges`), so telemetry adds a fixed cost per request or batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine, Sequence
from typing import Any

from models.detector import FraudDetector, LearnOutcome
from models.drift import DriftReport
from models.event_time import EventTimeBounds
from models.idempotency import ConflictingRepeatError
from models.schemas import Label, Transaction
from models.scored import Scored
from pipelines.drift_watch import log_drift_events, watch_drift
from pipelines.label_log import log_corrections
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.retrain.jobs import RetrainJobs
from pipelines.retrain.offline_store import ExampleSink
from pipelines.rules.book import RuleBook
from pipelines.runtime import loops
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.model_status import ModelStatus, model_statuses
from pipelines.runtime.protocol import QueueFullError
from pipelines.runtime.scoreboard import Clock, DashboardSnapshot, Scoreboard, utc_now
from pipelines.runtime.simulated_feed import SimulatedFeed
from pipelines.telemetry import StateGauges, Telemetry

logger = logging.getLogger(__name__)


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
        lifecycle: ModelLifecycle | None = None,
    ) -> None:
        self.detector = detector
        self.alerts = alerts
        self.telemetry = telemetry or Telemetry()
        self.lifecycle = lifecycle
        """Snapshots, promotion and audit through the model registry (none: not kept)."""
        self.jobs: RetrainJobs | None = None
        """The batch retrain jobs, run here (none: not available)."""
        self.resumed = False
        """Whether the models and state were resumed from a snapshot at start-up."""
        self.offline: ExampleSink | None = None
        """Where learned labels are written for batch retraining (none: not kept)."""
        self.event_time: EventTimeBounds | None = None
        """Bounds on the timestamps clients send, against this runtime's clock (none: any)."""
        self.feed: SimulatedFeed | None = None
        self.rules: RuleBook | None = None
        """The rule sets, in the data directory; a version written applies at once (none:
        not kept)."""
        """Simulated traffic warmed up on at start and fed through the queue (none: off)."""
        self.board = Scoreboard(
            detector,
            alerts,
            self.telemetry,
            clock=clock,
            score_window=score_window,
            quality_history=quality_history,
        )
        self.telemetry.watch(self.gauges)
        self.telemetry.watch_rules(lambda: self.detector.rule_decisions)
        watch_drift(self.telemetry, detector)
        self._queue: asyncio.Queue[Transaction] = asyncio.Queue(maxsize=queue_size)
        self._consumer: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Model and state are loaded and the queue is being consumed."""
        return self._consumer is not None and not self._consumer.done()

    @property
    def unready_reason(self) -> str:
        return "the model and feature state are still loading"

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def retraining(self) -> RetrainJobs | None:
        return self.jobs

    @property
    def local_jobs(self) -> RetrainJobs | None:
        """The jobs run here: this process owns the models."""
        return self.jobs

    def input_context(self) -> dict[str, Any] | None:
        bounds = self.event_time
        return None if bounds is None else bounds.window(self.board.clock()).context()

    async def score_request(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """`score`, inline on the event loop: memory state answers in microseconds."""
        return self.score(transactions)

    def score(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Score in order, publish the alerts they raise to the alert log, return the scores."""
        scored, alerts = self.board.score(transactions)
        if alerts:
            self.alerts.publish(alerts)
        self._log_drift()
        return scored

    def _log_drift(self) -> None:
        if self.lifecycle is not None:
            log_drift_events(self.detector, self.lifecycle.registry.log_event)

    async def accept(self, transactions: Sequence[Transaction]) -> None:
        self.detector.refuse_conflicting(transactions)
        self.enqueue(transactions)

    async def take_labels(self, labels: Sequence[Label]) -> LearnOutcome | None:
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

    def enqueue(self, transactions: Sequence[Transaction]) -> None:
        """Queue transactions for asynchronous scoring, all or none."""
        if self._queue.maxsize - self._queue.qsize() < len(transactions):
            raise QueueFullError(f"the transaction queue is full ({self._queue.maxsize})")
        for tx in transactions:
            self._queue.put_nowait(tx)

    def model_status(self) -> ModelStatus:
        """The champion's status."""
        return self.model_statuses()[0]

    def model_statuses(self) -> list[ModelStatus]:
        return model_statuses(self.detector)

    def shadowing(self) -> Collection[str]:
        return self.detector.challengers.keys()

    def sample_quality(self) -> None:
        """Add the serving models' rolling AP, as of now, to the quality history."""
        self.board.sample_quality(self.model_statuses())

    def alert_threshold(self) -> float:
        return self.detector.alerting.threshold

    def dashboard(self, *, bins: int = 20, minutes: int = 15) -> DashboardSnapshot:
        return self.board.dashboard(self.model_status(), bins=bins, minutes=minutes)

    def drift_report(self) -> DriftReport | None:
        monitor = self.detector.drift
        return None if monitor is None else monitor.report

    def gauges(self) -> StateGauges:
        """The state Prometheus reads at each scrape."""
        return self.board.gauges(self.backlog, self.model_statuses())

    async def start(self) -> None:
        """Warm the models up on the simulated history (unless resumed from a snapshot), then
        consume the queue."""
        if self.feed is not None and not self.resumed:
            # Replaying the history takes seconds of CPU: off the loop, so /healthz answers.
            warmed = await asyncio.to_thread(self.feed.warm_up)
            logger.info("learned from %d simulated historical transactions", warmed)
        self.board.start()
        self._consumer = asyncio.create_task(self._consume(), name="transaction-queue")

    def background_tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The quality sampler; the lifecycle's clock, kept here where the models are; the
        simulated feed, when on; the drift comparisons, off the loop."""
        tasks = {"quality-sampler": loops.sample_quality(self.sample_quality)}
        if self.lifecycle is not None:
            tasks["model-lifecycle"] = loops.tick_lifecycle(self.lifecycle)
        if self.feed is not None:
            tasks["simulated-feed"] = self.feed.run()
        monitor = self.detector.drift
        if monitor is not None and monitor.deferred:
            tasks["drift-comparison"] = loops.compare_drift(monitor, self._log_drift)
        return tasks

    async def stop(self) -> None:
        """Stop consuming and take the final snapshot: a clean stop loses nothing learned or
        scored."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        if self.lifecycle is not None:
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
