"""What `fraudstream bench http` was asked to do and what it measured.

Apart from the bench itself so that the command line and the reports read them without the
load generator's imports; `percentile` is the one latency rule every bench shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.options import TrafficOptions, require_not_negative, require_positive


@dataclass(frozen=True)
class HttpBenchOptions(TrafficOptions):
    """What load to generate, for how long, and against which server."""

    clients: int = 32
    seconds: float = 10.0
    batch_seconds: float = 5.0
    batch_size: int = 1_000
    in_process_transactions: int = 20_000
    training_transactions: int = 20_000
    """Transactions a server the bench starts scores and learns the labels of before it is
    measured (0: measured as it starts, before its learner has learned anything)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(
            self, "clients", "seconds", "batch_seconds", "batch_size", "in_process_transactions"
        )
        require_not_negative(self, "training_transactions")


@dataclass(frozen=True)
class WorkloadResult:
    """One closed-loop workload: requests started in the measured window and their latency."""

    name: str
    path: str
    clients: int
    transactions_per_request: int
    seconds: float
    requests: int
    errors: int
    """Responses outside 2xx, and requests that got no response."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    client_cpu: float
    """Cores the load generator used over the window (1.0: one core, fully)."""
    server_cpu: float | None
    """Cores the server used over the window; unknown for a server the bench did not start."""

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def transactions_per_second(self) -> float:
        return self.requests_per_second * self.transactions_per_request

    @property
    def server_ms_per_request(self) -> float | None:
        """Server CPU per request: its cost, whatever share of the cores it could get."""
        if self.server_cpu is None or self.requests == 0:
            return None
        return self.server_cpu * self.seconds / self.requests * 1_000

    @property
    def client_ms_per_request(self) -> float | None:
        return self.client_cpu * self.seconds / self.requests * 1_000 if self.requests else None


@dataclass(frozen=True)
class HttpBenchResult:
    """Every workload's figures, with what is needed to read them."""

    options: HttpBenchOptions
    url: str
    server_pid: int | None
    """The server process the bench started (and stopped), if it started one."""
    cpu_count: int
    load_average: float | None
    """The machine's one-minute load average when the bench began: other work competing."""
    learner: str
    labels_learned: int
    score: WorkloadResult
    baseline: WorkloadResult | None
    """None when the server does not serve the constant endpoint."""
    batch: WorkloadResult
    in_process: InProcessRates

    @property
    def score_over_baseline(self) -> float | None:
        """Score requests per second over constant-score requests per second."""
        if self.baseline is None or self.baseline.requests == 0:
            return None
        return self.score.requests_per_second / self.baseline.requests_per_second


@dataclass(frozen=True)
class InProcessRates:
    """Transactions a second the same learner scores in this process, without HTTP."""

    single: float
    """One transaction per ``score_many`` call, as ``POST /v1/score`` makes them."""
    batched: float
    """``batch_size`` transactions per call, as ``POST /v1/score/batch`` makes them."""


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest rank: always an observed value, and never smaller for a larger ``fraction``.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.99)
    (2.0, 4.0)
    """
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]
