"""Load figures of the HTTP API: the full scoring path against a bare-HTTP baseline.

The bench starts ``fraudstream serve`` in a subprocess (unless it is given a URL) and drives it
with closed-loop keep-alive clients: single scores, a constant-score endpoint that parses the
same body but never touches the detector, and batches. Score and baseline are measured in the
same run against the same process, so their ratio is what features, scoring, the stored vector
and the alert policy cost behind HTTP, even on a noisy machine where absolute figures drift.
Server and load generator share this machine's cores; the CPU each used is measured beside the
figures, because a load generator that needs more CPU than the server caps what it can show.

A server the bench starts is first taught through the API (`train_server`): it scores a stream
of transactions and learns their labels, so that its learner is measured as a serving one runs,
past its warm-up; the in-process rate it is compared with comes from a learner taught alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import uvloop

from models.detector import FraudDetector
from models.schemas import Label, LabelSource, Transaction
from pipelines.bench.http_result import (
    HttpBenchOptions,
    HttpBenchResult,
    InProcessRates,
    WorkloadResult,
    percentile,
)
from pipelines.bench.load_client import KeepAliveConnection
from pipelines.bench.run import cores, load_average, step_counter
from pipelines.bench.server_process import ServerProcess, process_cpu_seconds, serve
from pipelines.offline.evaluation import EvaluationOptions, build_detector

__all__ = [
    "BASELINE_PATH",
    "BATCH_PATH",
    "LABELS_PATH",
    "SCORE_PATH",
    "STEPS",
    "TRAINING_FRAUD_AMOUNT",
    "HttpBenchOptions",
    "HttpBenchResult",
    "InProcessRates",
    "TransactionBodies",
    "WorkloadResult",
    "bench_http",
    "in_process_rates",
    "percentile",
    "train_server",
    "training_labels",
]
"""The options and results live in `pipelines.bench.http_result`; importers find them here."""

SCORE_PATH = "/v1/score"
BASELINE_PATH = "/v1/bench/constant"
BATCH_PATH = "/v1/score/batch"
LABELS_PATH = "/v1/labels"
REQUEST_TIMEOUT_SECONDS = 60.0
STEPS = 6
"""Progress steps: server ready, taught, score, baseline, batch, in-process rate."""

TRAINING_FRAUD_AMOUNT = 250.0
"""In the labels the bench teaches its server, payments above this are fraud: about 2 % of the
bodies' amounts, a pattern a learner's bins can take up."""

TRAINING_BATCH = 1_000
"""Transactions scored, then labelled, per request while teaching: the API's default largest
batch."""

_JSON = {"content-type": "application/json"}

SERVER_ENVIRONMENT = {
    "FRAUDSTREAM_BENCH_ENDPOINTS": "true",
    # An access-log line per request would be measured along with the API.
    "FRAUDSTREAM_LOG_LEVEL": "warning",
}


class TransactionBodies:
    """Distinct valid transactions as JSON bytes, in increasing event time.

    Cards pay about twice a day on average, as in the simulator, so feature windows hold what
    they hold in production rather than thousands of payments a minute per card. Ids carry a
    per-run prefix so that runs against one long-lived server never repeat one.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> bodies = TransactionBodies(cards=10, terminals=20, start=datetime(2026, 1, 1, tzinfo=UTC))
    >>> tx = Transaction.model_validate_json(bodies.one())
    >>> tx.currency, tx.amount > 0, str(tx.timestamp)
    ('EUR', True, '2026-01-01 00:00:00+00:00')
    """

    def __init__(self, cards: int, terminals: int, start: datetime, seed: int = 0) -> None:
        self.cards = cards
        self.terminals = terminals
        self._rng = random.Random(seed)
        self._prefix = f"bench-{uuid.uuid4().hex[:12]}"
        self._step = timedelta(days=1) / (2 * cards)
        self._next_time = start
        self._count = 0

    def _transaction(self) -> dict[str, Any]:
        rng = self._rng
        self._count += 1
        timestamp = self._next_time
        self._next_time += self._step
        return {
            "transaction_id": f"{self._prefix}-{self._count}",
            "timestamp": timestamp,
            "card_id": f"card-{rng.randrange(self.cards)}",
            "terminal_id": f"terminal-{rng.randrange(self.terminals)}",
            "amount": max(0.01, round(rng.lognormvariate(3.5, 1.0), 2)),
            "currency": "EUR",
        }

    def one(self) -> bytes:
        """One transaction; orjson writes UTC timestamps with a ``Z``."""
        return orjson.dumps(self._transaction(), option=orjson.OPT_UTC_Z)

    def many(self, count: int) -> bytes:
        """A JSON array of ``count`` transactions, for the batch endpoint."""
        return orjson.dumps([self._transaction() for _ in range(count)], option=orjson.OPT_UTC_Z)


# -- teaching the learner ----------------------------------------------------------------------


def training_labels(transactions: Sequence[Transaction]) -> list[Label]:
    """The labels the bench teaches: a chargeback an hour after each payment, fraud above
    `TRAINING_FRAUD_AMOUNT`."""
    return [
        Label(
            transaction_id=tx.transaction_id,
            is_fraud=tx.amount > TRAINING_FRAUD_AMOUNT,
            labelled_at=tx.timestamp + timedelta(hours=1),
            source=LabelSource.CHARGEBACK,
        )
        for tx in transactions
    ]


async def train_server(server: ServerProcess, bodies: TransactionBodies, transactions: int) -> None:
    """Score ``transactions`` of ``bodies`` on the server, `TRAINING_BATCH` at a time, and
    send each batch's labels after it; every label must be learned."""
    async with httpx.AsyncClient(
        base_url=server.url, trust_env=False, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for first in range(0, transactions, TRAINING_BATCH):
            body = bodies.many(min(TRAINING_BATCH, transactions - first))
            (await client.post(BATCH_PATH, content=body, headers=_JSON)).raise_for_status()
            batch = [Transaction.model_validate(item) for item in orjson.loads(body)]
            labels = [label.model_dump(mode="json") for label in training_labels(batch)]
            answer = await client.post(LABELS_PATH, content=orjson.dumps(labels), headers=_JSON)
            answer.raise_for_status()
            learned = answer.json().get("learned")
            if learned != len(labels):
                raise RuntimeError(f"the server learned {learned} of {len(labels)} labels")


def _train_in_process(detector: FraudDetector, transactions: Sequence[Transaction]) -> None:
    """`train_server` on a detector in this process: the same batches, labels and order."""
    for first in range(0, len(transactions), TRAINING_BATCH):
        batch = transactions[first : first + TRAINING_BATCH]
        detector.score_many(batch)
        detector.learn(training_labels(batch))


# -- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Load:
    name: str
    path: str
    clients: int
    transactions_per_request: int
    body: Callable[[], bytes]
    warm_up: float
    seconds: float


@dataclass
class _Samples:
    measure_from: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def record(self, started: float, ended: float, ok: bool) -> None:
        if started >= self.measure_from:
            self.latencies.append(ended - started)
            self.errors += not ok


async def _closed_loop(
    connection: KeepAliveConnection, load: _Load, samples: _Samples, stop_at: float
) -> None:
    """Send the next request as soon as the previous answer arrives, until ``stop_at``."""
    while True:
        body = load.body()
        started = time.perf_counter()
        if started >= stop_at:
            return
        try:
            status = await connection.post(load.path, body)
            ok = 200 <= status < 300
        except (OSError, asyncio.IncompleteReadError):
            ok = False
        samples.record(started, time.perf_counter(), ok)


async def _cpu_over(start: float, end: float, pid: int | None) -> tuple[float, float | None]:
    """Cores used by this process and by the server between ``start`` and ``end``."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    wall, client, server = time.perf_counter(), time.process_time(), process_cpu_seconds(pid)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    elapsed = time.perf_counter() - wall
    client_cores = (time.process_time() - client) / elapsed
    server_after = process_cpu_seconds(pid)
    if server is None or server_after is None:
        return client_cores, None
    return client_cores, (server_after - server) / elapsed


async def _run(server: ServerProcess, load: _Load) -> WorkloadResult:
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(KeepAliveConnection(server.url))
            for _ in range(load.clients)
        ]
        measure_from = time.perf_counter() + load.warm_up
        stop_at = measure_from + load.seconds
        samples = _Samples(measure_from)
        cpu = asyncio.create_task(_cpu_over(measure_from, stop_at, server.pid))
        await asyncio.gather(*(_closed_loop(c, load, samples, stop_at) for c in clients))
        client_cpu, server_cpu = await cpu
    ordered = sorted(samples.latencies)
    p50, p95, p99 = (percentile(ordered, q) * 1_000 for q in (0.50, 0.95, 0.99))
    return WorkloadResult(
        name=load.name,
        path=load.path,
        clients=load.clients,
        transactions_per_request=load.transactions_per_request,
        seconds=load.seconds,
        requests=len(ordered),
        errors=samples.errors,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )


@dataclass(frozen=True)
class _Model:
    learner: str
    params: Mapping[str, Any]
    labels_learned: int


@dataclass(frozen=True)
class _Workloads:
    model: _Model
    score: WorkloadResult
    baseline: WorkloadResult | None
    batch: WorkloadResult


async def _model_and_baseline(
    server: ServerProcess, bodies: TransactionBodies
) -> tuple[_Model, bool]:
    """The live learner, and whether the server has the constant endpoint."""
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as client:
        response = await client.get("/v1/models")
        response.raise_for_status()
        champion = response.json()["models"][0]
        probe = await client.post(BASELINE_PATH, content=bodies.one(), headers=_JSON)
    model = _Model(champion["name"], champion["params"], champion["labels_learned"])
    return model, probe.status_code != 404


async def _workloads(
    server: ServerProcess,
    bodies: TransactionBodies,
    options: HttpBenchOptions,
    teach: int,
    advance: Callable[[], None],
) -> _Workloads:
    """Teach the server on ``teach`` transactions, then run the three workloads."""
    if teach:
        await train_server(server, bodies, teach)
    advance()
    model, has_baseline = await _model_and_baseline(server, bodies)

    def single(name: str, path: str) -> _Load:
        return _Load(name, path, options.clients, 1, bodies.one, options.warm_up, options.seconds)

    score = await _run(server, single("score", SCORE_PATH))
    advance()
    baseline = None
    if has_baseline:
        baseline = await _run(server, single("baseline", BASELINE_PATH))
    advance()
    size = options.batch_size
    batches = _Load(
        "batch",
        BATCH_PATH,
        1,
        size,
        lambda: bodies.many(size),
        options.warm_up,
        options.batch_seconds,
    )
    batch = await _run(server, batches)
    advance()
    return _Workloads(model, score, baseline, batch)


# -- in process ------------------------------------------------------------------------------


def _scoring_rate(
    learner: str,
    params: Mapping[str, Any],
    training: Sequence[Transaction],
    stream: Sequence[Transaction],
    per_call: int,
) -> float:
    # Taught as the server the bench starts is, so only HTTP and validation stand between the
    # two figures.
    detector = build_detector(EvaluationOptions(learner=learner, params=params))
    _train_in_process(detector, training)
    started = time.perf_counter()
    for first in range(0, len(stream), per_call):
        detector.score_many(stream[first : first + per_call])
    return len(stream) / (time.perf_counter() - started)


def in_process_rates(
    learner: str,
    params: Mapping[str, Any],
    bodies: TransactionBodies,
    transactions: int,
    batch_size: int,
    training: int = 0,
) -> InProcessRates:
    """How fast ``learner``, taught on the first ``training`` transactions of ``bodies`` as
    `train_server` teaches a server, scores the next ``transactions`` singly and in batches."""
    taught = [Transaction.model_validate_json(bodies.one()) for _ in range(training)]
    stream = [Transaction.model_validate_json(bodies.one()) for _ in range(transactions)]
    return InProcessRates(
        single=_scoring_rate(learner, params, taught, stream, 1),
        batched=_scoring_rate(learner, params, taught, stream, batch_size),
    )


def bench_http(
    options: HttpBenchOptions | None = None, progress: Callable[[int], None] | None = None
) -> HttpBenchResult:
    """Run the three workloads against a server, then the in-process rate of its learner."""
    options = options or HttpBenchOptions()
    load_at_start = load_average()
    start = options.first_event_time()
    bodies = TransactionBodies(options.cards, options.terminals, start, options.seed)
    advance = step_counter(progress)
    # Only a server of the bench's own is taught: labels sent to another would change it.
    teach = 0 if options.url is not None else options.training_transactions

    with serve(options.url, SERVER_ENVIRONMENT) as server:
        advance()
        # uvloop, as the server runs on: the load generator must cost less than what it measures.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            ran = runner.run(_workloads(server, bodies, options, teach, advance))
    # After the server has stopped, so that nothing else of ours competes for the CPU.
    replayed = TransactionBodies(options.cards, options.terminals, start, options.seed)
    in_process = in_process_rates(
        ran.model.learner,
        ran.model.params,
        replayed,
        options.in_process_transactions,
        options.batch_size,
        training=teach,
    )
    advance()
    return HttpBenchResult(
        options=options,
        url=server.url,
        server_pid=server.pid,
        cpu_count=cores(),
        load_average=load_at_start,
        learner=ran.model.learner,
        labels_learned=ran.model.labels_learned,
        score=ran.score,
        baseline=ran.baseline,
        batch=ran.batch,
        in_process=in_process,
    )
