"""End-to-end figures of distributed mode: Kafka in, workers over Redis, scores out.

One run measures, on one simulated stream and one trained model:

1. the in-process rate of the scoring path (features, learner score, alert policy) over
   in-memory state, in batches as a worker takes them; then the same detector over Redis state
   and stores, without Kafka;
2. the end-to-end rate: a backlog is produced first, then the workers start, and the scores
   topic is read (a plain consumer of all its partitions) until every transaction has a score;
3. produce-to-score latency: transactions sent at a steady rate, each one's send time kept by
   its id, its score's arrival timed by the same clock.

The workers are real ``fraudstream worker`` subprocesses, not tasks in this process: each has
its own interpreter and event loop, as in a deployment, so the bench's producer and score
reader neither share a GIL with them nor delay their batches, and the CPU each used can be read
from ``/proc``. With one worker on two cores, the worker, Redis, the broker and this process
share those cores; the CPU figures show who used them.

Each run has its own topic prefix, consumer group and Redis key prefix, so runs never see each
other; its Redis keys are deleted at the end, its topics (on a broker the bench did not start)
stay. The end-to-end rate counts from the first score to the last: starting the workers
(interpreter, model, joining the group) is a one-off cost, shown apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import DetectorPolicy, FraudDetector, ServingModels
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
from pipelines.local_servers import (
    Cores,
    CpuClock,
    LocalProcess,
    LocalServerError,
    RunningServers,
    worker_processes,
)
from pipelines.model_channel import ModelChannel
from pipelines.options import require_positive
from pipelines.redis_state import RedisFeatureState
from pipelines.redis_stores import RedisCooldownBook, RedisPendingStore, redis_client
from pipelines.topics import Topics

TARGET_TRANSACTIONS_PER_SECOND = 8_000.0
TARGET_SHARE_OF_IN_PROCESS = 0.5
TARGET_P99_MS = 250.0
TARGET_RATE = 1_000.0
TARGET_WORKERS = 1
TARGET_CORES = 2
STEPS = 6
"""Progress steps: stream and model, in process, over Redis, backlog, scored, paced phase."""

LABEL_DELAY_SECONDS = 7 * DAY
PENDING_TTL_SECONDS = 45 * DAY
COOLDOWN_SECONDS = DAY
STALL_SECONDS = 60.0
"""While scores are awaited, none new for this long ends the run with an error."""
PRODUCE_CHUNK = 5_000


class StreamBenchError(LocalServerError):
    """A worker exited, scores stopped coming, or a server could not be reached."""


@dataclass(frozen=True)
class StreamBenchOptions:
    """What to send and how; the defaults are what the issue's targets are stated for."""

    transactions: int = 50_000
    """The backlog scored end to end, and the stream of the in-process rates."""
    workers: int = 1
    rate: float = 1_000.0
    """Transactions a second in the latency phase."""
    seconds: float = 10.0
    """Length of the latency phase."""
    seed: int = 0
    learner: str = DEFAULT_LEARNER
    training_transactions: int = 20_000
    """The model learns a separate simulated stream of this size, labels a week late."""
    batch_size: int = 1_000
    """Transactions per in-process call, and the workers' most records per poll."""
    partitions: int = 12
    alert_threshold: float = 0.5
    reasons: int = 3
    session_timeout_ms: int = 6_000
    """The workers' Kafka session: Tansu holds a join for about half of it."""

    def __post_init__(self) -> None:
        require_positive(
            self, "transactions", "workers", "rate", "seconds", "training_transactions"
        )

    @property
    def paced_transactions(self) -> int:
        return max(1, round(self.rate * self.seconds))


@dataclass(frozen=True)
class Rate:
    transactions: int
    seconds: float
    cores: Cores

    @property
    def transactions_per_second(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else float("nan")

    def cpu_us(self, cores: float | None) -> float | None:
        """CPU per transaction of a process that used ``cores`` over this window."""
        if cores is None or self.transactions == 0:
            return None  # a backlog small enough to arrive in one poll leaves nothing timed
        return cores * self.seconds / self.transactions * 1e6


@dataclass(frozen=True)
class Latency:
    """Produce-to-score latency in the paced phase: from the send call to the score's arrival."""

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
    """Where the run's conditions differ from the target's."""


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
    """From the first score to the backlog's last (the first poll's scores not counted)."""
    score_records: int
    """Score records read for the backlog: more than its transactions means repeats."""
    latency: Latency

    @property
    def share_of_in_process(self) -> float:
        return self.end_to_end.transactions_per_second / self.in_process.transactions_per_second

    def targets(self) -> list[TargetCheck]:
        setup = "; ".join(
            note
            for differs, note in (
                (self.options.workers != TARGET_WORKERS, f"{self.options.workers} workers ran"),
                (self.cpu_count != TARGET_CORES, f"{self.cpu_count} cores here"),
            )
            if differs
        )
        paced = "" if self.options.rate == TARGET_RATE else f"paced at {self.options.rate:,.0f}/s"
        rate, share = self.end_to_end.transactions_per_second, self.share_of_in_process
        p99 = self.latency.p99_ms
        return [
            TargetCheck(
                f">= {TARGET_TRANSACTIONS_PER_SECOND:,.0f} tx/s end to end, "
                f"{TARGET_WORKERS} worker on {TARGET_CORES} cores",
                f"{rate:,.0f} tx/s",
                rate >= TARGET_TRANSACTIONS_PER_SECOND,
                setup,
            ),
            TargetCheck(
                f">= {TARGET_SHARE_OF_IN_PROCESS:.2f} of the in-process rate",
                f"{share:.2f}",
                share >= TARGET_SHARE_OF_IN_PROCESS,
                setup,
            ),
            TargetCheck(
                f"p99 <= {TARGET_P99_MS:,.0f} ms at {TARGET_RATE:,.0f} tx/s",
                f"{p99:,.1f} ms",
                p99 <= TARGET_P99_MS,
                paced,
            ),
        ]


def worker_key_prefix(topic_prefix: str) -> str:
    """The Redis key prefix a worker derives from its topic prefix: the composition root's
    rule, which this layer may not import (a test holds the two together)."""
    return f"fraudstream:{topic_prefix}"


def _windows() -> WindowSpec:
    return WindowSpec(label_delay_seconds=LABEL_DELAY_SECONDS)


def scoring_detector(
    options: StreamBenchOptions,
    learner: OnlineLearner,
    client: redis.Redis | None = None,
    prefix: str = "",
) -> FraudDetector:
    """The detector as the workers are configured (`worker_settings`): state, pending vectors
    and cooldowns in Redis under ``prefix`` when given a client, in memory otherwise."""
    windows = _windows()
    policy = DetectorPolicy(reasons=options.reasons, pending_ttl_seconds=PENDING_TTL_SECONDS)
    alerts = AlertPolicyConfig(threshold=options.alert_threshold, cooldown_seconds=COOLDOWN_SECONDS)
    features = FeatureSet(FeatureSpec(windows=windows))
    if client is None:
        return FraudDetector(
            features, InMemoryFeatureState(windows), learner, policy, AlertPolicy(alerts)
        )
    return FraudDetector(
        features,
        RedisFeatureState(client, windows, prefix=prefix),
        learner,
        policy,
        AlertPolicy(
            alerts, RedisCooldownBook(client, prefix=prefix, cooldown_seconds=COOLDOWN_SECONDS)
        ),
        RedisPendingStore(client, prefix=prefix, ttl_seconds=PENDING_TTL_SECONDS),
    )


def worker_settings(
    options: StreamBenchOptions, servers: RunningServers, topic_prefix: str, secret: str
) -> dict[str, str]:
    """The workers' whole configuration: what `scoring_detector` builds in process."""
    return {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": servers.bootstrap,
        "FRAUDSTREAM_REDIS_URL": servers.redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": topic_prefix,
        "FRAUDSTREAM_CONSUMER_GROUP": f"{topic_prefix}workers",
        "FRAUDSTREAM_SECRET_KEY": secret,
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
    """The learner after replaying a separate simulated stream, labels a week late."""
    stream, labels = simulated_stream(options.training_transactions, options.seed + 1)
    options_ = EvaluationOptions(learner=options.learner, seed=options.seed)
    detector = build_detector(options_, reasons=0)
    replay(stream, labels, detector, LABEL_DELAY_SECONDS)
    return detector.learner


def _in_process_rate(
    detector: FraudDetector, stream: Sequence[Transaction], batch: int, clock: CpuClock
) -> Rate:
    before = clock.read()
    for start in range(0, len(stream), batch):
        detector.score_many(stream[start : start + batch])
    after = clock.read()
    return Rate(len(stream), after[0] - before[0], clock.cores(before, after))


class _ScoreReader:
    """Reads every partition of the scores topic, keeping each transaction id's first arrival."""

    def __init__(self, kafka: KafkaSettings, topic: str, partitions: int) -> None:
        self.arrived: dict[str, float] = {}
        self.records = 0
        self._kafka = kafka
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            client_id=kafka.client_id,
            enable_auto_commit=False,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        )
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._news = asyncio.Event()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[_ScoreReader]:
        await start_with_retry(self._consumer, self._kafka, "score reader")
        try:
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning()
            task = asyncio.create_task(self._read())
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            fetched = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for batch in fetched.values():
                self.records += len(batch)
                for record in batch:
                    self.arrived.setdefault(orjson.loads(record.value)["transaction_id"], now)
            if fetched:
                self._news.set()

    async def until(self, count: int, workers: Sequence[LocalProcess]) -> None:
        """Wait until ``count`` transactions have a score; fail if a worker exits or scores
        stop coming."""
        progress_at, seen = time.monotonic(), len(self.arrived)
        while len(self.arrived) < count:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), 0.5)
            for worker in workers:
                worker.check()
            if len(self.arrived) > seen:
                progress_at, seen = time.monotonic(), len(self.arrived)
            elif time.monotonic() - progress_at > STALL_SECONDS:
                raise StreamBenchError(
                    f"no new score for {STALL_SECONDS:g} s: {seen:,} of {count:,} arrived"
                )


async def _paced(
    producer: Any, records: Sequence[OutgoingRecord], ids: Sequence[str], rate: float
) -> tuple[dict[str, float], float]:
    """Send at ``rate`` a second; each id's send time, and how long sending took."""
    sent: dict[str, float] = {}
    deliveries = []
    started = time.perf_counter()
    done = 0
    while done < len(records):
        due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
        for at in range(done, due):
            sent[ids[at]] = time.perf_counter()
            record = records[at]
            deliveries.append(await producer.send(record.topic, record.value, key=record.key))
        done = due
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    await asyncio.gather(*deliveries)
    return sent, seconds


@dataclass(frozen=True)
class _KafkaFigures:
    produced_per_second: float
    start_up_seconds: float
    end_to_end: Rate
    score_records: int
    latency: Latency


async def _through_kafka(
    options: StreamBenchOptions,
    servers: RunningServers,
    stream: Sequence[Transaction],
    settings: dict[str, str],
    advance: Callable[[], None],
) -> _KafkaFigures:
    kafka = KafkaSettings(servers.bootstrap, client_id="fraudstream-bench")
    topics = Topics.with_prefix(settings["FRAUDSTREAM_TOPIC_PREFIX"])
    records = [
        OutgoingRecord(topics.transactions, tx.card_id.encode(), tx.model_dump_json().encode())
        for tx in stream
    ]
    ids = [tx.transaction_id for tx in stream]
    backlog = options.transactions
    await ensure_topics(kafka, topics.names(), options.partitions)
    producer = make_producer(kafka)
    await start_with_retry(producer, kafka, "bench producer")
    reader = _ScoreReader(kafka, topics.scores, options.partitions)
    try:
        await fetch_metadata(producer, [topics.transactions])
        async with reader.reading():
            started = time.perf_counter()
            for start in range(0, backlog, PRODUCE_CHUNK):
                await send_batch_and_wait(
                    producer, records[start : min(start + PRODUCE_CHUNK, backlog)]
                )
            produced_per_second = backlog / (time.perf_counter() - started)
            advance()
            with tempfile.TemporaryDirectory(prefix="fraudstream-bench-") as directory:
                workers = worker_processes(options.workers, settings, Path(directory))
                spawned = time.perf_counter()
                try:
                    clock = CpuClock(servers, [worker.start() for worker in workers])
                    await reader.until(1, workers)
                    before = clock.read()
                    await reader.until(backlog, workers)
                    end_to_end_cores = clock.cores(before, clock.read())
                    score_records = reader.records
                    advance()
                    before = clock.read()
                    paced = records[backlog:], ids[backlog:]
                    sent, send_seconds = await _paced(producer, *paced, options.rate)
                    await reader.until(len(stream), workers)
                    paced_cores = clock.cores(before, clock.read())
                finally:
                    for worker in workers:
                        worker.stop()
    finally:
        await producer.stop()
    arrivals = sorted(reader.arrived[transaction_id] for transaction_id in ids[:backlog])
    first_poll = arrivals.count(arrivals[0])
    ms = sorted((reader.arrived[tid] - when) * 1_000 for tid, when in sent.items())
    advance()
    return _KafkaFigures(
        produced_per_second,
        arrivals[0] - spawned,
        Rate(backlog - first_poll, arrivals[-1] - arrivals[0], end_to_end_cores),
        score_records,
        Latency(
            len(sent),
            send_seconds,
            percentile(ms, 0.5),
            percentile(ms, 0.95),
            percentile(ms, 0.99),
            ms[-1],
            paced_cores,
        ),
    )


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    # The stream lives for the whole run: as `bench core` does, keep the collector from
    # rescanning it, so the in-process rate is the path's cost, not this process's heap's.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=5_000))
    for start in range(0, len(keys), 5_000):
        client.unlink(*keys[start : start + 5_000])


def bench_stream(
    options: StreamBenchOptions,
    servers: RunningServers,
    progress: Callable[[int], None] | None = None,
) -> StreamBenchResult:
    """The in-process rates, then the end-to-end rate, then the paced latency, in one run."""
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done)

    topic_prefix, secret = f"bench{secrets.token_hex(5)}.", secrets.token_hex(16)
    key_prefix = worker_key_prefix(topic_prefix)
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
        clock = CpuClock(servers)
        with _frozen_heap():
            detector = scoring_detector(options, copy.deepcopy(learner))
            in_process = _in_process_rate(detector, backlog, options.batch_size, clock)
            advance()
            detector = scoring_detector(
                options, copy.deepcopy(learner), client, f"{key_prefix}in-process:"
            )
            over_redis = _in_process_rate(detector, backlog, options.batch_size, clock)
            advance()
            channel = ModelChannel(client, prefix=key_prefix, secret_key=secret.encode())
            channel.publish(ServingModels(learner))
            settings = worker_settings(options, servers, topic_prefix, secret)
            try:
                kafka = asyncio.run(_through_kafka(options, servers, stream, settings, advance))
            except BrokerUnavailableError as error:
                raise StreamBenchError(str(error)) from None
    finally:
        # A failed run's keys go too; a Redis that is gone has nothing to delete.
        with contextlib.suppress(redis.RedisError):
            _delete_keys(client, key_prefix)
        client.close()
    return StreamBenchResult(
        options=options,
        cpu_count=os.cpu_count() or 1,
        load_average=load_average,
        model_version=detector.model_version,
        in_process=in_process,
        in_process_redis=over_redis,
        produced_per_second=kafka.produced_per_second,
        start_up_seconds=kafka.start_up_seconds,
        end_to_end=kafka.end_to_end,
        score_records=kafka.score_records,
        latency=kafka.latency,
    )
