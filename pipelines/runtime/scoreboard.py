"""What every runtime does alike with a batch of scores: the alerts they raise, the counts, and
the running figures the dashboard and Prometheus read.

Both runtimes compose a `Scoreboard`: they differ in where transactions come from and where
scores and alerts go, not in how a score is made, alerted or shown. The hot path only extends
a bounded deque of recent scores; the figures are computed when the dashboard or a scrape asks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models.detector import FraudDetector
from models.schemas import Alert, Decision, Transaction
from models.scored import Scored
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.dashboard import (
    AlertRate,
    QualityPoint,
    ScoreBin,
    alert_rate,
    score_histogram,
)
from pipelines.runtime.model_status import ModelStatus
from pipelines.stream.scoring_batch import score_batch
from pipelines.telemetry import ModelGauges, StateGauges, Telemetry

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


class Scoreboard:
    """Scores with a detector, makes the alerts, and keeps what the dashboard is drawn from."""

    def __init__(
        self,
        detector: FraudDetector,
        alerts: AlertLog,
        telemetry: Telemetry,
        *,
        clock: Clock = utc_now,
        score_window: int = 5_000,
        quality_history: int = 720,
    ) -> None:
        self.detector = detector
        self.alerts = alerts
        self.telemetry = telemetry
        self.clock = clock
        self.scored = 0
        self.started_at: datetime | None = None
        """When the runtime started: the alert rate is unknown before it."""
        self.recent_scores: deque[float] = deque(maxlen=score_window)
        """The last scores given, for the dashboard's distribution."""
        self.quality: deque[QualityPoint] = deque(maxlen=quality_history)
        """Samples of the live model's rolling AP (`sample_quality`), oldest first."""

    def start(self) -> None:
        self.started_at = self.clock()

    def score(self, transactions: Sequence[Transaction]) -> tuple[list[Scored], list[Alert]]:
        """Score in order and make the alerts the scores raise; publishing them is the
        runtime's part."""
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
            if result.decision is not Decision.PASS and not result.replayed
        ]
        raised = sum(alert.decision is Decision.ALERT for alert in alerts) if alerts else 0
        self.telemetry.scored(len(scored), time.perf_counter() - started, raised)
        self.telemetry.learned(learner.labels_learned - learned_before)
        return scored, alerts

    def sample_quality(self, statuses: Sequence[ModelStatus]) -> None:
        """Add the serving models' rolling AP, as of now, to the quality history."""
        champion, *challengers = statuses
        self.quality.append(
            QualityPoint(
                self.clock(),
                champion.rolling_average_precision,
                {status.name: status.rolling_average_precision for status in challengers},
            )
        )

    def dashboard(self, model: ModelStatus, *, bins: int, minutes: int) -> DashboardSnapshot:
        """The score distribution, the alert rate over ``minutes`` and the quality history."""
        now = self.clock()
        threshold = self.detector.alerting.threshold
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
            model=model,
            transactions_scored=self.scored,
            alerts_raised=self.alerts.raised,
            threshold=threshold,
            scores=len(self.recent_scores),
            histogram=score_histogram(self.recent_scores, bins, threshold=threshold),
            alert_rate=alert_rate(
                (alert.raised_at for alert in raised if alert.decision is Decision.ALERT),
                now=now,
                minutes=minutes,
                observed_since=observed_since,
            ),
            quality=list(self.quality),
        )

    def gauges(self, backlog: int, statuses: Sequence[ModelStatus]) -> StateGauges:
        """The state Prometheus reads at each scrape."""
        return StateGauges(
            consumer_lag=backlog,
            label_backlog=self.detector.pending.awaiting_label or 0,
            models=tuple(
                ModelGauges(
                    name=status.name,
                    version=status.version,
                    role=status.role,
                    rolling_average_precision=status.quality.average_precision,
                    rolling_card_precision_at_k=status.quality.card_precision_at_k,
                )
                for status in statuses
            ),
        )

    def _alert(self, tx: Transaction, result: Scored) -> Alert:
        return Alert(
            transaction=tx,
            score=result.score,
            model_version=result.model_version,
            threshold=result.threshold,
            reasons=tuple(reason.to_contract() for reason in result.reasons),
            raised_at=self.clock(),
            decision=result.decision,
        )
