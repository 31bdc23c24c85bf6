"""Does writing a snapshot slow scoring? ``POST /v1/score`` latency at rest and during one.

A ``fraudstream serve`` subprocess is filled with ``pending`` scored vectors awaiting their
labels (the bulk of what a snapshot of the serving state holds), then single transactions are
sent at a fixed ``rate`` throughout, over rounds of ``rest_seconds`` with nothing else going
on then one ``POST /v1/models/snapshots`` (the champion registered, the serving state
written): rest and snapshot windows interleave, so that both see the same machine. A
request's latency runs from when it was due to when its answer was read, so a loop held by
the snapshot shows as the queue of requests behind it, not as one slow request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from pipelines.bench.http import SCORE_PATH, TransactionBodies, percentile
from pipelines.bench.load_client import KeepAliveConnection
from pipelines.bench.run import step_counter
from pipelines.bench.server_process import ServerProcess, serve

STEPS = 4

BATCH = 1_000
"""Transactions per request while filling the pending vectors (the default batch cap)."""

SNAPSHOT_PATH = "/v1/models/snapshots"


@dataclass(frozen=True)
class SnapshotBenchOptions:
    pending: int = 200_000
    rate: float = 200.0
    """Scoring requests a second, due at fixed intervals."""
    connections: int = 8
    rest_seconds: float = 10.0
    """Seconds at rest before each snapshot."""
    snapshots: int = 3
    """Snapshots written, one after another, under the same load."""
    url: str | None = None
    """Measure this running server instead of starting one."""


@dataclass(frozen=True)
class Latencies:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class SnapshotBench:
    options: SnapshotBenchOptions
    at_rest: Latencies
    during: Latencies
    snapshot_seconds: list[float]
    """How long each ``POST /v1/models/snapshots`` took to answer (its state written)."""

    @property
    def p99_ratio(self) -> float:
        return self.during.p99_ms / self.at_rest.p99_ms


@dataclass
class _Paced:
    """Requests due every ``1 / rate`` seconds, shared by the connections in due order."""

    rate: float
    start: float
    sent: int = 0
    samples: list[tuple[float, float, bool]] = field(default_factory=list)
    """(due, latency, ok) of every request answered."""

    def next_due(self) -> float:
        due = self.start + self.sent / self.rate
        self.sent += 1
        return due


async def _send(
    connection: KeepAliveConnection, paced: _Paced, body: Callable[[], bytes], stop_at: float
) -> None:
    while (due := paced.next_due()) < stop_at:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            ok = 200 <= await connection.post(SCORE_PATH, body()) < 300
        except (OSError, asyncio.IncompleteReadError):
            ok = False
        paced.samples.append((due, time.perf_counter() - due, ok))


def _latencies(samples: list[tuple[float, float, bool]]) -> Latencies:
    ordered = sorted(latency for _, latency, _ in samples)
    return Latencies(
        requests=len(ordered),
        errors=sum(not ok for _, _, ok in samples),
        p50_ms=percentile(ordered, 0.50) * 1_000,
        p99_ms=percentile(ordered, 0.99) * 1_000,
        max_ms=(ordered[-1] if ordered else float("nan")) * 1_000,
    )


Window = tuple[float, float]


async def _under_load(
    server: ServerProcess,
    options: SnapshotBenchOptions,
    bodies: TransactionBodies,
    snapshot: Callable[[], object],
) -> tuple[_Paced, list[Window], list[Window]]:
    """Paced load throughout, over rounds of ``rest_seconds`` at rest then one ``snapshot``
    (a blocking call, made on a thread); returns the samples and the rest and snapshot
    windows, interleaved so that both see the same machine."""
    paced = _Paced(options.rate, time.perf_counter() + 0.5)
    rests: list[Window] = []
    snapshots: list[Window] = []
    async with contextlib.AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(KeepAliveConnection(server.url))
            for _ in range(options.connections)
        ]
        senders = [
            asyncio.create_task(_send(connection, paced, bodies.one, float("inf")))
            for connection in connections
        ]
        await asyncio.sleep(1.0)  # warm: connections open, the first requests answered
        for _ in range(options.snapshots):
            began = time.perf_counter()
            await asyncio.sleep(options.rest_seconds)
            rests.append((began, time.perf_counter()))
            began = time.perf_counter()
            await asyncio.to_thread(snapshot)
            snapshots.append((began, time.perf_counter()))
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
    return paced, rests, snapshots


def _within(
    samples: list[tuple[float, float, bool]], windows: list[Window]
) -> list[tuple[float, float, bool]]:
    return [sample for sample in samples if any(a <= sample[0] < b for a, b in windows)]


def _fill(client: httpx.Client, bodies: TransactionBodies, pending: int) -> None:
    for _ in range(0, pending, BATCH):
        answer = client.post(
            "/v1/score/batch",
            content=bodies.many(BATCH),
            headers={"content-type": "application/json"},
        )
        answer.raise_for_status()


@contextlib.contextmanager
def _server(options: SnapshotBenchOptions) -> Iterator[ServerProcess]:
    # No periodic snapshot: the bench takes them when it measures them.
    settings = {
        "FRAUDSTREAM_SNAPSHOT_EVERY": "30d",
        "FRAUDSTREAM_SNAPSHOT_EVERY_LABELS": str(10**9),
    }
    with serve(options.url, settings) as server:
        yield server


def bench_snapshot(
    options: SnapshotBenchOptions, progress: Callable[[int], None] | None = None
) -> SnapshotBench:
    """Start (or reach) the server, fill it, then measure at rest and during snapshots."""
    advance = step_counter(progress)
    cards = max(1, options.pending // 20)
    # Event times end a day before now: every vector stays pending, none is in the future.
    span = timedelta(days=options.pending / (2 * cards))
    start = datetime.now(UTC) - timedelta(days=1) - span
    bodies = TransactionBodies(cards=cards, terminals=2_000, start=start)
    with _server(options) as server, httpx.Client(base_url=server.url, timeout=600) as client:
        advance()
        _fill(client, bodies, options.pending)
        advance()

        def snapshot() -> None:
            client.post(SNAPSHOT_PATH).raise_for_status()

        paced, rests, snapshots = asyncio.run(_under_load(server, options, bodies, snapshot))
        advance()
    advance()
    return SnapshotBench(
        options,
        _latencies(_within(paced.samples, rests)),
        _latencies(_within(paced.samples, snapshots)),
        [end - began for began, end in snapshots],
    )
