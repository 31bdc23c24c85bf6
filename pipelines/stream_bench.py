"""End-to-end figures of distributed mode: Kafka in, workers over Redis, scores out.

One run measures, on one simulated stream and one trained model:

1. the in-process rate of the scoring path (features, learner score, alert policy) over
   in-memory state, in batches as a worker takes them; then the same detector over Redis state
   and stores, without Kafka;
2. the end-to-end rate: a backlog of transactions is produced first, then the workers start,
   and the scores topic is read (by a plain consumer of all its partitions) until every
   transaction has its score;
3. produce-to-score latency: transactions sent at a steady rate, each one's send time kept by
   its id, its score's arrival timed by the same clock.

The workers are real ``fraudstream worker`` subprocesses, not tasks in this process: each has
its own interpreter and event loop, as in a deployment, so the bench's producer and score
reader neither share a GIL with them nor delay their batches, and the CPU each used is read
from ``/proc``. With one worker on two cores, the worker, Redis, the broker and this process
share those cores; the CPU columns show who used them.

Each run has its own topic prefix, consumer group and Redis key prefix, so runs never see
each other; its Redis keys are deleted at the end, its topics (on a broker the bench did not
start) stay. The end-to-end rate counts from the first score to the last: the workers' start
(interpreter, model load, joining the group) is a one-off cost, shown apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import DetectorPolicy, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.replay import replay
from models.schemas import Transaction
from models.state import DAY, WindowSpec
from pipelines.benchmarks import bench_stream as simulated_stream
from pipelines.evaluation import EvaluationOptions, build_detector
from pipelines.http_bench import percentile
from pipelines.kafka_clients import (
    BrokerUnavailableError,
    KafkaSettings,
    OutgoingRecord,
    ensure_topics,
    fetch_metadata,
    make_producer,
    send_batch_and_wait,
    start_with_retry,
)
from pipelines.local_servers import RunningServers
from pipelines.model_channel import ModelChannel
from pipelines.redis_state import RedisFeatureState
from pipelines.redis_stores import RedisCooldownBook, RedisPendingStore, redis_client
from pipelines.server_process import ServerProcessError, process_cpu_seconds
from pipelines.topics import Topics

TARGET_TRANSACTIONS_PER_SECOND = 8_000.0
TARGET_SHARE_OF_IN_PROCESS = 0.5
TARGET_P99_MS = 250.0
TARGET_RATE = 1_000.0
TARGET_WORKERS = 1
TARGET_CORES = 2
STEPS = 6
"""Progress steps: stream and model, in process, in process over Redis, backlog produced,
backlog scored, paced phase."""

LABEL_DELAY_SECONDS = 7 * DAY
PENDING_TTL_SECONDS = 45 * DAY
COOLDOWN_SECONDS = DAY
STALL_SECONDS = 60.0
"""No new score for this long, while scores are awaited, ends the run with an error."""
STOP_TIMEOUT_SECONDS = 20.0
PRODUCE_CHUNK = 5_000


class StreamBenchError(ServerProcessError):
    """A worker exited, scores stopped coming, or a server could not be reached."""


@dataclass(frozen=True)
class StreamBenchOptions:
    """What to send and how; the defaults are what the stated targets are measured with."""

    transactions: int = 50_000
    """The backlog scored for the end-to-end rate, and the in-process rates' stream."""
    workers: int = 1
    rate: float = 1_000.0
    """Transactions a second during the latency phase."""
    seconds: float = 10.0
    """Length of the latency phase."""
    seed: int = 0
    learner: str = DEFAULT_LEARNER
    training_transactions: int = 20_000
    """The model is trained on a separate simulated stream of this size, labels 7 days late."""
    batch_size: int = 1_000
    """Transactions per in-process call, and the workers' most records per poll."""
    partitions: int = 12
    alert_threshold: float = 0.5
    reasons: int = 3
    session_timeout_ms: int = 6_000
    """The workers' Kafka session: Tansu holds a join for about half of it."""

    def __post_init__(self) -> None:
        positive = {
            "transactions": self.transactions,
            "workers": self.workers,
            "rate": self.rate,
            "seconds": self.seconds,
            "training_transactions": self.training_transactions,
            "batch_size": self.batch_size,
            "partitions": self.partitions,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")

    @property
    def paced_transactions(self) -> int:
        return max(1, round(self.rate * self.seconds))


@dataclass(frozen=True)
class Cores:
    """Cores each process used over a window (1.0: one core, fully); None: not ours to read."""

    bench: float
    workers: float | None
    redis: float | None
    broker: float | None


@dataclass(frozen=True)
class Rate:
    transactions: int
    seconds: float
    cores: Cores

    @property
    def transactions_per_second(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class Latency:
    """Produce-to-score latency of the paced phase: send call to the score's arrival."""

    sent: int
    send_seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cores: Cores

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else float("nan")


@dataclass(frozen=True)
class TargetCheck:
    target: str
    measured: str
    met: bool
    note: str = ""


@dataclass(frozen=True)
class StreamBenchResult:
    options: StreamBenchOptions
    cpu_count: int
    load_average: float | None
    model_version: str
    in_process: Rate
    in_process_redis: Rate
    produced_per_second: float
    start_up_seconds: float
    """From starting the worker processes to the first score."""
    end_to_end: Rate
    """From the first score to the backlog's last."""
    score_records: int
    """Score records read for the backlog: more than its transactions means repeats."""
    latency: Latency

    @property
    def share_of_in_process(self) -> float:
        return self.end_to_end.transactions_per_second / self.in_process.transactions_per_second

    def targets(self) -> list[TargetCheck]:
        """The issue's targets, with a note wherever the run's conditions differ from theirs."""
        options = self.options
        setup = []
        if options.workers != TARGET_WORKERS:
            setup.append(f"ran {options.workers} workers, the target is for {TARGET_WORKERS}")
        if self.cpu_count != TARGET_CORES:
            setup.append(f"{self.cpu_count} cores here, the target is for {TARGET_CORES}")
        rate_note = (
            ""
            if options.rate == TARGET_RATE
            else f"paced at {options.rate:,.0f}/s, the target is at {TARGET_RATE:,.0f}/s"
        )
        end_to_end = self.end_to_end.transactions_per_second
        return [
            TargetCheck(
                f">= {TARGET_TRANSACTIONS_PER_SECOND:,.0f} tx/s end to end",
                f"{end_to_end:,.0f} tx/s",
                end_to_end >= TARGET_TRANSACTIONS_PER_SECOND,
                "; ".join(setup),
            ),
            TargetCheck(
                f">= {TARGET_SHARE_OF_IN_PROCESS:.2f} of the in-process rate",
                f"{self.share_of_in_process:.2f}",
                self.share_of_in_process >= TARGET_SHARE_OF_IN_PROCESS,
                "; ".join(setup),
            ),
            TargetCheck(
                f"p99 <= {TARGET_P99_MS:,.0f} ms at {TARGET_RATE:,.0f} tx/s",
                f"{self.latency.p99_ms:,.1f} ms",
                self.latency.p99_ms <= TARGET_P99_MS,
                rate_note,
            ),
        ]


def worker_key_prefix(topic_prefix: str) -> str:
    """The Redis key prefix a worker derives from its topic prefix (the composition root's
    rule, which this layer may not import; a test holds the two together)."""
    return f"fraudstream:{topic_prefix}"


@dataclass(frozen=True)
class _Run:
    topic_prefix: str
    secret: str

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)


def _windows() -> WindowSpec:
    return WindowSpec(label_delay_seconds=LABEL_DELAY_SECONDS)


def _policies(options: StreamBenchOptions) -> tuple[DetectorPolicy, AlertPolicyConfig]:
    return (
        DetectorPolicy(reasons=options.reasons, pending_ttl_seconds=PENDING_TTL_SECONDS),
        AlertPolicyConfig(threshold=options.alert_threshold, cooldown_seconds=COOLDOWN_SECONDS),
    )


def in_memory_detector(options: StreamBenchOptions, learner: OnlineLearner) -> FraudDetector:
    policy, alerts = _policies(options)
    features = FeatureSet(FeatureSpec(windows=_windows()))
    state = InMemoryFeatureState(_windows())
    return FraudDetector(features, state, learner, policy, AlertPolicy(alerts))


def redis_detector(
    options: StreamBenchOptions, client: redis.Redis, learner: OnlineLearner, prefix: str
) -> FraudDetector:
    """The detector as a worker builds it: state, pending vectors and cooldowns in Redis."""
    policy, alerts = _policies(options)
    return FraudDetector(
        FeatureSet(FeatureSpec(windows=_windows())),
        RedisFeatureState(client, _windows(), prefix=prefix),
        learner,
        policy,
        AlertPolicy(
            alerts, RedisCooldownBook(client, prefix=prefix, cooldown_seconds=COOLDOWN_SECONDS)
        ),
        RedisPendingStore(client, prefix=prefix, ttl_seconds=PENDING_TTL_SECONDS),
    )


def worker_environment(
    options: StreamBenchOptions, servers: RunningServers, run: _Run
) -> dict[str, str]:
    """The workers' whole configuration, equal to the in-process detectors' by construction."""
    return {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": servers.bootstrap,
        "FRAUDSTREAM_REDIS_URL": servers.redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": run.topic_prefix,
        "FRAUDSTREAM_CONSUMER_GROUP": f"{run.topic_prefix}workers",
        "FRAUDSTREAM_SECRET_KEY": run.secret,
        "FRAUDSTREAM_TOPIC_PARTITIONS": str(options.partitions),
        "FRAUDSTREAM_KAFKA_SESSION_TIMEOUT_MS": str(options.session_timeout_ms),
        "FRAUDSTREAM_MAX_POLL_RECORDS": str(options.batch_size),
        "FRAUDSTREAM_LEARNER": options.learner,
        "FRAUDSTREAM_ALERT_THRESHOLD": str(options.alert_threshold),
        "FRAUDSTREAM_REASONS": str(options.reasons),
        "FRAUDSTREAM_LABEL_DELAY": f"{LABEL_DELAY_SECONDS}s",
        "FRAUDSTREAM_PENDING_TTL": f"{PENDING_TTL_SECONDS}s",
        "FRAUDSTREAM_ALERT_COOLDOWN": f"{COOLDOWN_SECONDS}s",
        "FRAUDSTREAM_LOG_LEVEL": "warning",
    }


def trained_learner(options: StreamBenchOptions) -> OnlineLearner:
    """The learner replayed over a separate stream with labels a week late."""
    stream, labels = simulated_stream(options.training_transactions, options.seed + 1)
    detector = build_detector(
        EvaluationOptions(learner=options.learner, seed=options.seed), reasons=0
    )
    replay(stream, labels, detector, LABEL_DELAY_SECONDS)
    return detector.learner


# -- measuring -------------------------------------------------------------------------------


class _CpuClock:
    """Reads the CPU time of this process and of the other processes involved."""

    def __init__(self, servers: RunningServers, workers: Sequence[int] = ()) -> None:
        self.servers = servers
        self.workers = list(workers)

    def read(self) -> tuple[float, float, float | None, float | None, float | None]:
        worker_times = [process_cpu_seconds(pid) for pid in self.workers]
        workers = (
            sum(t for t in worker_times if t is not None)
            if worker_times and None not in worker_times
            else None
        )
        return (
            time.perf_counter(),
            time.process_time(),
            workers,
            process_cpu_seconds(self.servers.redis_pid),
            process_cpu_seconds(self.servers.broker_pid),
        )

    @staticmethod
    def cores(before: tuple[Any, ...], after: tuple[Any, ...]) -> Cores:
        wall = after[0] - before[0]

        def share(index: int) -> float | None:
            if before[index] is None or after[index] is None or wall <= 0:
                return None
            return float((after[index] - before[index]) / wall)

        return Cores(share(1) or 0.0, share(2), share(3), share(4))


def _in_process_rate(
    detector: FraudDetector, stream: Sequence[Transaction], batch: int, clock: _CpuClock
) -> Rate:
    before = clock.read()
    for start in range(0, len(stream), batch):
        detector.score_many(stream[start : start + batch])
    after = clock.read()
    return Rate(len(stream), after[0] - before[0], clock.cores(before, after))


class _ScoreReader:
    """Reads every partition of the scores topic; keeps each transaction id's first arrival."""

    def __init__(self, kafka: KafkaSettings, topic: str, partitions: int) -> None:
        self.arrived: dict[str, float] = {}
        self.records = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            client_id=kafka.client_id,
            enable_auto_commit=False,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        )
        self._assigned = [TopicPartition(topic, p) for p in range(partitions)]
        self._news = asyncio.Event()

    async def start(self, kafka: KafkaSettings) -> None:
        await start_with_retry(self._consumer, kafka, "score reader")
        self._consumer.assign(self._assigned)
        await self._consumer.seek_to_beginning()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        while True:
            fetched = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for batch in fetched.values():
                self.records += len(batch)
                for record in batch:
                    self.arrived.setdefault(orjson.loads(record.value)["transaction_id"], now)
            if fetched:
                self._news.set()

    async def until(self, count: int, alive: Callable[[], None]) -> None:
        """Wait until ``count`` transactions have a score; fail when scores stall."""
        last_progress, seen = time.monotonic(), len(self.arrived)
        while len(self.arrived) < count:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), 0.5)
            alive()
            if len(self.arrived) > seen:
                last_progress, seen = time.monotonic(), len(self.arrived)
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise StreamBenchError(
                    f"no new score for {STALL_SECONDS:g} s: {seen:,} of {count:,} arrived"
                )


class _Workers:
    """``fraudstream worker`` subprocesses, each logging to a file of the run's directory."""

    def __init__(self, count: int, environment: dict[str, str], directory: Path) -> None:
        executable = Path(sys.executable).with_name("fraudstream")
        if not executable.exists():
            raise FileNotFoundError(f"no fraudstream command next to {sys.executable}")
        # The bench sets every setting that matters, so inherited FRAUDSTREAM_* variables
        # would make the workers differ from the in-process path: they are left out.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
        self._processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        for number in range(count):
            log = directory / f"worker-{number}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [str(executable), "worker"],
                    env={**inherited, **environment},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            self._processes.append((process, log))

    @property
    def pids(self) -> list[int]:
        return [process.pid for process, _ in self._processes]

    def check_alive(self) -> None:
        for process, log in self._processes:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2_000:].strip()
                raise StreamBenchError(f"a worker exited with status {process.returncode}: {tail}")

    def stop(self) -> None:
        """SIGTERM (each finishes and commits its batch), then SIGKILL if one hangs."""
        for process, _ in self._processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process, _ in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


@dataclass(frozen=True)
class _KafkaFigures:
    produced_per_second: float
    start_up_seconds: float
    end_to_end: Rate
    score_records: int
    latency: Latency


async def _paced(
    producer: Any, topic: str, records: Sequence[tuple[str, bytes, bytes]], rate: float
) -> tuple[dict[str, float], float]:
    """Send at ``rate`` a second; return each id's send time and how long sending took."""
    sent: dict[str, float] = {}
    deliveries = []
    started = time.perf_counter()
    done = 0
    while done < len(records):
        due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
        for transaction_id, key, value in records[done:due]:
            sent[transaction_id] = time.perf_counter()
            deliveries.append(await producer.send(topic, value, key=key))
        done = due
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    await asyncio.gather(*deliveries)
    return sent, seconds


async def _through_kafka(
    options: StreamBenchOptions,
    servers: RunningServers,
    run: _Run,
    stream: Sequence[Transaction],
    advance: Callable[[], None],
) -> _KafkaFigures:
    kafka = KafkaSettings(servers.bootstrap, client_id="fraudstream-bench")
    topics = run.topics
    backlog, paced = stream[: options.transactions], stream[options.transactions :]
    records = [
        (tx.transaction_id, tx.card_id.encode(), tx.model_dump_json().encode()) for tx in stream
    ]
    await ensure_topics(kafka, topics.names(), options.partitions)
    producer = make_producer(kafka)
    await start_with_retry(producer, kafka, "bench producer")
    reader = _ScoreReader(kafka, topics.scores, options.partitions)
    reading: asyncio.Task[None] | None = None
    try:
        await fetch_metadata(producer, [topics.transactions])
        await reader.start(kafka)
        reading = asyncio.create_task(reader.run())
        started = time.perf_counter()
        for start in range(0, len(backlog), PRODUCE_CHUNK):
            chunk = records[start : min(start + PRODUCE_CHUNK, len(backlog))]
            await send_batch_and_wait(
                producer,
                [OutgoingRecord(topics.transactions, key, value) for _, key, value in chunk],
            )
        produced_per_second = len(backlog) / (time.perf_counter() - started)
        advance()
        with tempfile.TemporaryDirectory(prefix="fraudstream-bench-") as directory:
            spawned = time.perf_counter()
            workers = _Workers(
                options.workers, worker_environment(options, servers, run), Path(directory)
            )
            try:
                clock = _CpuClock(servers, workers.pids)
                await reader.until(1, workers.check_alive)
                before = clock.read()
                await reader.until(len(backlog), workers.check_alive)
                after = clock.read()
                arrivals = sorted(reader.arrived[tx.transaction_id] for tx in backlog)
                first_batch = sum(1 for when in arrivals if when == arrivals[0])
                end_to_end = Rate(
                    len(backlog) - first_batch,
                    arrivals[-1] - arrivals[0],
                    clock.cores(before, after),
                )
                score_records = reader.records
                advance()
                before = clock.read()
                sent, send_seconds = await _paced(
                    producer, topics.transactions, records[len(backlog) :], options.rate
                )
                await reader.until(len(stream), workers.check_alive)
                after = clock.read()
            finally:
                workers.stop()
        latencies = sorted(
            (reader.arrived[transaction_id] - when) * 1_000 for transaction_id, when in sent.items()
        )
        advance()
    finally:
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        await reader.stop()
        await producer.stop()
    return _KafkaFigures(
        produced_per_second,
        arrivals[0] - spawned,
        end_to_end,
        score_records,
        Latency(
            len(paced),
            send_seconds,
            percentile(latencies, 0.5),
            percentile(latencies, 0.95),
            percentile(latencies, 0.99),
            latencies[-1],
            clock.cores(before, after),
        ),
    )


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    # The stream lives for the whole run: keep the collector from rescanning it, as
    # `bench core` does, so the in-process rate is the path's cost, not this process's heap's.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5_000):
        batch.append(key)
        if len(batch) >= 5_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def bench_stream(
    options: StreamBenchOptions,
    servers: RunningServers,
    progress: Callable[[int], None] | None = None,
) -> StreamBenchResult:
    """Measure the in-process rates, the end-to-end rate and the paced latency, in that order."""
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done)

    run = _Run(f"bench{secrets.token_hex(5)}.", secrets.token_hex(16))
    key_prefix = worker_key_prefix(run.topic_prefix)
    needed = options.transactions + options.paced_transactions
    # The simulation makes about, not exactly, as many as asked for: ask for some more.
    stream = simulated_stream(needed + needed // 10 + 1_000, options.seed)[0][:needed]
    backlog = stream[: options.transactions]
    learner = trained_learner(options)
    advance()
    client = redis_client(servers.redis_url)
    try:
        try:
            client.ping()
        except redis.ConnectionError as error:
            raise StreamBenchError(f"no Redis at {servers.redis_url}: {error}") from None
        clock = _CpuClock(servers)
        with _frozen_heap():
            detector = in_memory_detector(options, copy.deepcopy(learner))
            in_process = _in_process_rate(detector, backlog, options.batch_size, clock)
            advance()
            detector = redis_detector(
                options, client, copy.deepcopy(learner), f"{key_prefix}in-process:"
            )
            in_process_redis = _in_process_rate(detector, backlog, options.batch_size, clock)
            advance()
            ModelChannel(client, prefix=key_prefix, secret_key=run.secret.encode()).publish(learner)
            try:
                figures = asyncio.run(_through_kafka(options, servers, run, stream, advance))
            except BrokerUnavailableError as error:
                raise StreamBenchError(str(error)) from None
        _delete_keys(client, key_prefix)
    finally:
        client.close()
    return StreamBenchResult(
        options=options,
        cpu_count=os.cpu_count() or 1,
        load_average=load_average,
        model_version=detector.model_version,
        in_process=in_process,
        in_process_redis=in_process_redis,
        produced_per_second=figures.produced_per_second,
        start_up_seconds=figures.start_up_seconds,
        end_to_end=figures.end_to_end,
        score_records=figures.score_records,
        latency=figures.latency,
    )
