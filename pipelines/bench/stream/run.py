"""End-to-end figures of distributed mode: Kafka in, workers over Redis, scores out.

One run measures, on one simulated stream and one trained model:

1. the in-process rates (`pipelines.bench.stream.rates`): the worker's own batch path, record bytes
   in and record bytes out, over in-memory state (the reference the end-to-end rate is set
   against), the detector alone over in-memory state, and the worker's path over Redis state
   and stores, in batches as a worker takes them, without Kafka;
2. the end-to-end rate: a backlog is produced first, then the workers start, and their
   consumer group's committed offsets are watched (`CommitWatcher`) until the whole backlog
   is committed; a worker commits a batch once its scores are acknowledged. The scores topic
   is then read (a plain consumer of all its partitions) to check that every transaction has
   a score;
3. produce-to-score latency: transactions sent at a steady rate, each one's send time kept by
   its id, its score's arrival timed by the same clock.

The workers are real ``fraudstream worker`` subprocesses, not tasks in this process: each has
its own interpreter and event loop, as in a deployment, so the bench's producer and score
reader neither share a GIL with them nor delay their batches, and the CPU each used can be read
from ``/proc``. With one worker on two cores, the worker, Redis, the broker and this process
share those cores; the CPU figures show who used them.

Each run has its own topic prefix, consumer group and Redis key prefix, so runs never see each
other; its Redis keys are deleted at the end, its topics (on a broker the bench did not start)
stay. The end-to-end rate counts from the first batch committed to the last: starting the
workers (interpreter, model, joining the group) is a one-off cost, shown apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import DetectorPolicy, FraudDetector, ServingModels
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Transaction
from models.state import DAY, WindowSpec
from pipelines.bench.core import bench_stream as simulated_stream
from pipelines.bench.core import trained_learner
from pipelines.bench.http_result import percentile
from pipelines.bench.local_servers import (
    CpuClock,
    RunningServers,
    worker_processes,
)
from pipelines.bench.run import cores, load_average, step_counter
from pipelines.bench.stream.rates import Rate, consumed_records, detector_rate, worker_path_rate
from pipelines.bench.stream.result import (
    Latency,
    StreamBenchOptions,
    StreamBenchResult,
)
from pipelines.bench.stream.traffic import CommitWatcher, ScoreReader, StreamBenchError, send_paced
from pipelines.collector import settled
from pipelines.lifecycle.model_channel import ModelChannel
from pipelines.state.redis_state import RedisFeatureState
from pipelines.state.redis_stores import (
    DeliveredAlerts,
    RedisCooldownBook,
    RedisPendingStore,
    redis_client,
)
from pipelines.stream.kafka_clients import (
    BrokerUnavailableError,
    KafkaSettings,
    OutgoingRecord,
    ensure_topics,
    fetch_metadata,
    make_producer,
    send_batch_and_wait,
    start_with_retry,
)
from pipelines.stream.scoring_batch import MemoryAlertMarks
from pipelines.stream.topics import Topics
from pipelines.stream.worker import WorkerOptions

__all__ = [
    "STEPS",
    "StreamBenchOptions",
    "StreamBenchResult",
    "bench_stream",
    "scoring_detector",
    "worker_key_prefix",
    "worker_settings",
]
"""The options and result live in `pipelines.bench.stream.result`; importers find them here."""

STEPS = 7
"""Progress steps: stream and model, worker path, detector, over Redis, backlog, scored, paced
phase."""

LABEL_DELAY_SECONDS = 7 * DAY
PENDING_TTL_SECONDS = 45 * DAY
COOLDOWN_SECONDS = DAY
PRODUCE_CHUNK = 5_000


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
    records: Sequence[OutgoingRecord],
    settings: dict[str, str],
    advance: Callable[[], None],
) -> _KafkaFigures:
    kafka = KafkaSettings(servers.bootstrap, client_id="fraudstream-bench")
    topics = Topics.with_prefix(settings["FRAUDSTREAM_TOPIC_PREFIX"])
    ids = [tx.transaction_id for tx in stream]
    backlog = options.transactions
    await ensure_topics(kafka, topics.names(), options.partitions)
    producer = make_producer(kafka)
    await start_with_retry(producer, kafka, "bench producer")
    reader = ScoreReader(kafka, topics.scores, options.partitions)
    group = settings["FRAUDSTREAM_CONSUMER_GROUP"]
    watcher = CommitWatcher(kafka, group, topics.transactions, options.partitions)
    try:
        await fetch_metadata(producer, [topics.transactions])
        async with reader.reading(), watcher.watching():
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
                    first_at, first_batches = await watcher.reached(1, workers)
                    before = clock.read()
                    last_at, _ = await watcher.reached(backlog, workers)
                    end_to_end_cores = clock.cores(before, clock.read())
                    await reader.until(backlog, workers)  # every score read, untimed
                    score_records = reader.records
                    advance()
                    before = clock.read()
                    paced = records[backlog:], ids[backlog:]
                    sent, send_seconds = await send_paced(producer, *paced, options.rate)
                    await reader.until(len(stream), workers)
                    paced_cores = clock.cores(before, clock.read())
                finally:
                    for worker in workers:
                        worker.stop()
    finally:
        await producer.stop()
    ms = sorted((reader.arrived[tid] - when) * 1_000 for tid, when in sent.items())
    advance()
    return _KafkaFigures(
        produced_per_second,
        first_at - spawned,
        Rate(backlog - first_batches, last_at - first_at, end_to_end_cores),
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


@dataclass(frozen=True)
class _InProcessRates:
    worker_path: Rate
    detector: Rate
    over_redis: Rate


def _in_process_rates(
    options: StreamBenchOptions,
    learner: OnlineLearner,
    client: redis.Redis,
    redis_prefix: str,
    backlog: Sequence[Transaction],
    records: Sequence[OutgoingRecord],
    topics: Topics,
    clock: CpuClock,
    advance: Callable[[], None],
) -> _InProcessRates:
    """The worker's batch path over memory, the detector alone, the worker's path over Redis:
    each from a fresh copy of the learner, on the backlog (and its ``records``) that the
    workers score end to end."""
    consumed = consumed_records(records, options.partitions)
    batch, limit = options.batch_size, WorkerOptions().max_record_bytes
    detector = scoring_detector(options, copy.deepcopy(learner))
    worker_path = worker_path_rate(
        detector, MemoryAlertMarks(), topics, consumed, batch, clock, limit
    )
    advance()
    detector_only = detector_rate(
        scoring_detector(options, copy.deepcopy(learner)), backlog, batch, clock
    )
    advance()
    detector = scoring_detector(options, copy.deepcopy(learner), client, redis_prefix)
    marks = DeliveredAlerts(client, prefix=redis_prefix, ttl_seconds=PENDING_TTL_SECONDS)
    over_redis = worker_path_rate(detector, marks, topics, consumed, batch, clock, limit)
    advance()
    return _InProcessRates(worker_path, detector_only, over_redis)


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
    load_at_start = load_average()
    advance = step_counter(progress)

    topic_prefix, secret = f"bench{secrets.token_hex(5)}.", secrets.token_hex(16)
    key_prefix = worker_key_prefix(topic_prefix)
    needed = options.transactions + options.paced_transactions
    # The simulation makes about, not exactly, as many as asked for: ask for some more.
    stream = simulated_stream(needed + needed // 10 + 1_000, options.seed)[0][:needed]
    backlog = stream[: options.transactions]
    topics = Topics.with_prefix(topic_prefix)
    records = [
        OutgoingRecord(topics.transactions, tx.card_id.encode(), tx.model_dump_json().encode())
        for tx in stream
    ]
    # Trained on a separate stream, as `bench core` measures its learners.
    learner = trained_learner(options.learner, options.training_transactions, options.seed + 1)
    advance()
    client = redis_client(servers.redis_url)
    try:
        try:
            client.ping()
        except redis.ConnectionError as error:
            raise StreamBenchError(f"no Redis at {servers.redis_url}: {error}") from None
        clock = CpuClock(servers)
        # The stream lives for the whole run, and the worker runs with the serving collector:
        # so does the in-process path it is compared with.
        with settled():
            rates = _in_process_rates(
                options,
                learner,
                client,
                f"{key_prefix}in-process:",
                backlog,
                records[: options.transactions],
                topics,
                clock,
                advance,
            )
            channel = ModelChannel(client, prefix=key_prefix, secret_key=secret.encode())
            channel.publish(ServingModels(learner))
            settings = worker_settings(options, servers, topic_prefix, secret)
            try:
                kafka = asyncio.run(
                    _through_kafka(options, servers, stream, records, settings, advance)
                )
            except BrokerUnavailableError as error:
                raise StreamBenchError(str(error)) from None
    finally:
        # A failed run's keys go too; a Redis that is gone has nothing to delete.
        with contextlib.suppress(redis.RedisError):
            _delete_keys(client, key_prefix)
        client.close()
    return StreamBenchResult(
        options=options,
        cpu_count=cores(),
        load_average=load_at_start,
        model_version=learner.version,
        in_process=rates.worker_path,
        in_process_detector=rates.detector,
        in_process_redis=rates.over_redis,
        produced_per_second=kafka.produced_per_second,
        start_up_seconds=kafka.start_up_seconds,
        end_to_end=kafka.end_to_end,
        score_records=kafka.score_records,
        latency=kafka.latency,
    )
