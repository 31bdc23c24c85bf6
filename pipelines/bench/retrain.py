"""Does a retrain slow scoring? Scoring latency at rest and while a retrain job runs.

One process, as embedded serving runs: a paced stream of single-transaction scoring calls on
the event loop (``rate`` a second), first with nothing else running, then while a retrain job
(reading a Parquet offline store, two fits, evaluation, report) runs in its child process, as
`RetrainJobs` runs it in the service. A call's latency
is measured from when it was due to when its score came back, so time spent waiting for the
GIL or for the loop counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from models.replay import revealed_label
from models.schemas import Label, Transaction
from models.simulator import SimulationConfig, simulate
from models.state import event_second
from pipelines.bench.run import step_counter
from pipelines.collector import settled
from pipelines.offline.datasets import dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions, build_detector
from pipelines.retrain.job import RetrainOptions, RetrainResult
from pipelines.retrain.jobs import RetrainJobs, RetrainLock
from pipelines.retrain.offline_store import ParquetOfflineStore

STEPS = 4


@dataclass(frozen=True)
class LatencyFigures:
    calls: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class RetrainBench:
    at_rest: LatencyFigures
    during: LatencyFigures
    retrain_seconds: float
    training_rows: int

    @property
    def p99_ratio(self) -> float:
        return self.during.p99_ms / self.at_rest.p99_ms


def _figures(latencies: list[float]) -> LatencyFigures:
    values = np.array(latencies) * 1_000
    return LatencyFigures(
        len(values), float(np.percentile(values, 50)), float(np.percentile(values, 99))
    )


async def _paced(
    score: Callable[[Transaction], object],
    stream: deque[Transaction],
    rate: float,
    until: Callable[[], bool],
) -> list[float]:
    latencies: list[float] = []
    interval = 1.0 / rate
    due = time.perf_counter()
    while not until() and stream:
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        score(stream.popleft())
        latencies.append(time.perf_counter() - due)
        due += interval
        if not latencies or len(latencies) % 50 == 0:
            await asyncio.sleep(0)
    return latencies


def bench_retrain(
    lock_dir: Path,
    *,
    customers: int = 2_000,
    days: int = 56,
    rate: float = 500.0,
    rest_seconds: float = 10.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> RetrainBench:
    """Replay ``days`` simulated days into a detector and an offline store, then score the
    rest of the stream at ``rate``: ``rest_seconds`` at rest, then for as long as a retrain
    (28 days of labels, the default hold-out) runs."""
    advance = step_counter(progress)
    frame = simulate(SimulationConfig(customers=customers, terminals=2 * customers, days=days + 7))
    dataset = dataset_from_frame(frame)
    delay = timedelta(days=7)
    detector = build_detector(EvaluationOptions(label_delay=delay, seed=seed))
    store = ParquetOfflineStore(lock_dir / "offline", detector.features.names)
    split = dataset.transactions[0].timestamp + timedelta(days=days)
    due: deque[tuple[int, Label]] = deque()
    later: deque[Transaction] = deque()
    for tx, fraud in zip(dataset.transactions, dataset.is_fraud, strict=True):
        if tx.timestamp >= split:
            later.append(tx)
            continue
        second = event_second(tx.timestamp)
        revealed = []
        while due and due[0][0] <= second:
            revealed.append(due.popleft()[1])
        if revealed:
            detector.learn(revealed, on_learned=store.append)
            if store.buffered >= 5_000:
                store.flush()
        detector.score(tx)
        due.append((second + int(delay.total_seconds()), revealed_label(tx, fraud, delay)))
    store.flush()
    advance()
    results: list[int] = []

    def keep(result: RetrainResult) -> str:
        results.append(result.rows["final"])
        return "bench"

    jobs = RetrainJobs(
        store,
        RetrainOptions(seed=seed),
        RetrainLock(lock_dir / "retrain.lock"),
        keep,
        lambda: split,
    )

    async def measure() -> tuple[list[float], list[float], float]:
        deadline = time.perf_counter() + rest_seconds
        rest = await _paced(detector.score, later, rate, lambda: time.perf_counter() > deadline)
        advance()
        started = time.perf_counter()
        job = jobs.submit("bench")
        during = await _paced(
            detector.score, later, rate, lambda: job.state in ("succeeded", "failed")
        )
        await jobs.wait()
        if job.state != "succeeded":
            raise RuntimeError(f"the retrain failed: {job.error}")
        return rest, during, time.perf_counter() - started

    # As `serve` runs once started: the same scorer, the same collector pauses.
    with settled():
        rest, during, seconds = asyncio.run(measure())
    advance()
    if not later:
        raise RuntimeError("the stream ran out before the retrain finished: lower the rate")
    advance()
    return RetrainBench(_figures(rest), _figures(during), seconds, results[0])
