"""The one interface the HTTP API serves from, whichever process it runs in.

Two implementations: `pipelines.runtime.embedded.EmbeddedRuntime` (one process scores, learns,
keeps the models and runs the retrain jobs) and `pipelines.runtime.cluster.ClusterRuntime` (an
API replica: scores over Redis with the learner's published models, hands transactions and
labels to Kafka, asks the learner for every change to the models). The app, the routers and the
command line type against `Runtime` only; what differs is said by the runtime, never found out
with ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Collection, Coroutine, Sequence
from typing import Any, Protocol, runtime_checkable

from models.detector import LearnOutcome
from models.drift import DriftReport
from models.schemas import Label, Transaction
from models.scored import Scored
from pipelines.lifecycle.model_lifecycle import Lifecycle
from pipelines.retrain.book import Retraining
from pipelines.retrain.jobs import RetrainJobs
from pipelines.rules.book import RuleBook
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.model_status import ModelStatus
from pipelines.runtime.scoreboard import DashboardSnapshot
from pipelines.telemetry import Telemetry


class QueueFullError(Exception):
    """Transactions cannot be taken now: the caller should retry later (HTTP 503)."""


@runtime_checkable
class Runtime(Protocol):
    """What the service asks of the process it serves from."""

    @property
    def ready(self) -> bool:
        """Whether it can serve requests now (`GET /readyz`)."""
        ...

    @property
    def unready_reason(self) -> str:
        """What `ready` waits for, said to a client that asked too early."""
        ...

    @property
    def backlog(self) -> int:
        """Transactions accepted here and not scored yet."""
        ...

    @property
    def alerts(self) -> AlertLog:
        """The alerts `GET /v1/alerts` and its stream serve."""
        ...

    @property
    def telemetry(self) -> Telemetry:
        """The metrics `GET /metrics` serves."""
        ...

    @property
    def lifecycle(self) -> Lifecycle | None:
        """Snapshots, promotion and audit through the model registry (none: not kept)."""
        ...

    @property
    def retraining(self) -> Retraining | None:
        """The batch retrain jobs, run here or asked of the learner (none: not available)."""
        ...

    @property
    def rules(self) -> RuleBook | None:
        """The rule sets beside the model, written here and applied by every scorer (none:
        not kept)."""
        ...

    @property
    def local_jobs(self) -> RetrainJobs | None:
        """The retrain jobs this process runs itself, whose schedule runs here and which are
        closed at its stop; none where another process runs them."""
        ...

    def input_context(self) -> dict[str, Any] | None:
        """The validation context for a request arriving now: the event times it may carry."""
        ...

    async def score_request(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Score for a caller who waits (`POST /v1/score`), publishing the alerts raised."""
        ...

    async def accept(self, transactions: Sequence[Transaction]) -> None:
        """Take transactions for asynchronous scoring (`POST /v1/transactions`), all or none:
        `QueueFullError` when they cannot be taken now, `ConflictingRepeatError` when one
        reuses a scored id with other content."""
        ...

    async def take_labels(self, labels: Sequence[Label]) -> LearnOutcome | None:
        """Learn labels now and say how, or hand them on (``None``) to the process that does."""
        ...

    def model_statuses(self) -> list[ModelStatus]:
        """The champion, then each shadow challenger, with their rolling quality."""
        ...

    def shadowing(self) -> Collection[str]:
        """The versions shadowing the champion now."""
        ...

    def dashboard(self, *, bins: int = ..., minutes: int = ...) -> DashboardSnapshot:
        """The score distribution, the alert rate over ``minutes`` and the quality history."""
        ...

    def alert_threshold(self) -> float:
        """The alert threshold in force now (it follows the scores under an alert budget)."""
        ...

    def drift_report(self) -> DriftReport | None:
        """The latest day's label-free drift report (none: not watched, or too few days)."""
        ...

    async def start(self) -> None:
        """Get ready to serve; `ready` is true once this returns and the runtime runs."""
        ...

    def background_tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The loops this process runs beside serving once started, by task name."""
        ...

    async def stop(self) -> None:
        """Stop serving; a clean stop loses nothing acknowledged."""
        ...
