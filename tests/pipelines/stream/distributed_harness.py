"""What the distributed-mode tests share: a stream, a trained model, roles, topic readers.

Everything here talks to the real servers the fixtures started; nothing is faked.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
import redis
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import DetectorPolicy, FraudDetector, ServingModels
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Label, Transaction
from models.scored import Scored
from models.simulator import SimulationConfig, simulate
from models.snapshots import dump_snapshot, load_snapshot
from models.state import WindowSpec
from pipelines.lifecycle.model_channel import ModelChannel
from pipelines.offline.datasets import dataset_from_frame
from pipelines.state.redis_state import RedisFeatureState
from pipelines.stream.kafka_clients import (
    KafkaSettings,
    OutgoingRecord,
    make_producer,
    send_batch_and_wait,
    start_with_retry,
)
from pipelines.stream.topics import Topics
from service.auth import hash_key
from service.distributed import key_prefix
from service.settings import Settings
from tests.servers.role_process import RoleProcess

SECRET = "a-test-deployment-secret-of-32-bytes-or-more"
ADMIN_KEY = "a-test-admin-key"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
"""Headers for the distributed API role, which always requires keys."""
ALERT_THRESHOLD = 0.2
WINDOWS = WindowSpec()
T = TypeVar("T")


@dataclass(frozen=True)
class Stream:
    """A simulated stream split in two: state warm-up, then the part sent through Kafka."""

    warm_up: list[Transaction]
    live: list[Transaction]
    is_fraud: dict[str, bool]


def simulated_stream(live: int, *, seed: int = 11) -> Stream:
    """About ten days of history to warm the state, then ``live`` transactions (< 7 days).

    The live part spans less than the label delay, so its terminal windows read only the
    warm-up, which both paths hold completely before the first live transaction.
    """
    frame = simulate(SimulationConfig(customers=4_000, terminals=2_000, days=13, seed=seed))
    data = dataset_from_frame(frame)
    cutoff = len(data.transactions) - live - 1_000
    labels = {
        tx.transaction_id: fraud for tx, fraud in zip(data.transactions, data.is_fraud, strict=True)
    }
    return Stream(data.transactions[:cutoff], data.transactions[cutoff : cutoff + live], labels)


def trained_learner(seed: int = 5) -> OnlineLearner:
    """A logistic learner that has seen a separate simulated month with its labels."""
    data = dataset_from_frame(
        simulate(SimulationConfig(customers=1_000, terminals=800, days=20, seed=seed))
    )
    detector = in_process_detector(OnlineLearner("logistic"))
    for start in range(0, len(data.transactions), 500):
        batch = data.transactions[start : start + 500]
        detector.score_many(batch)
    detector.learn(
        [
            Label(
                transaction_id=tx.transaction_id,
                is_fraud=fraud,
                labelled_at=tx.timestamp,
                source="chargeback",
            )
            for tx, fraud in zip(data.transactions, data.is_fraud, strict=True)
        ]
    )
    return detector.learner


def in_process_detector(learner: OnlineLearner) -> FraudDetector:
    """The embedded path, set exactly as the roles' defaults set the distributed one."""
    features = FeatureSet(FeatureSpec(windows=WINDOWS))
    return FraudDetector(
        features,
        InMemoryFeatureState(WINDOWS),
        learner,
        DetectorPolicy(reasons=3),
        AlertPolicy(AlertPolicyConfig(threshold=ALERT_THRESHOLD)),
    )


def copy_of(learner: OnlineLearner) -> OnlineLearner:
    return load_snapshot(dump_snapshot(learner, b"copy"), b"copy")


def prefix_of(topics: Topics) -> str:
    return topics.transactions.removesuffix("transactions")


def role_env(kafka: KafkaSettings, redis_url: str, topics: Topics, **extra: str) -> dict[str, str]:
    """The settings of a test's roles: its own topics, Redis keys and consumer groups.

    Groups are the test's own, like its topics, because the broker outlives the test: Tansu
    keeps a group's leader after the leader has left in the middle of a rebalance (a worker
    stopped as another joins), and never forms that group again. Under a name shared by the
    session's tests, every later test's workers would sit idle, never assigned a partition.
    """
    prefix = prefix_of(topics)
    return {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "FRAUDSTREAM_REDIS_URL": redis_url,
        "FRAUDSTREAM_TOPIC_PREFIX": prefix,
        "FRAUDSTREAM_CONSUMER_GROUP": f"{prefix}workers",
        "FRAUDSTREAM_LEARNER_GROUP": f"{prefix}learner",
        "FRAUDSTREAM_SECRET_KEY": SECRET,
        "FRAUDSTREAM_API_KEYS": orjson.dumps({hash_key(ADMIN_KEY): ["admin"]}).decode(),
        "FRAUDSTREAM_TOPIC_PARTITIONS": "4",
        "FRAUDSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "FRAUDSTREAM_MODEL_POLL": "1s",
        "FRAUDSTREAM_PUBLISH_EVERY": "1s",
        "FRAUDSTREAM_ALERT_THRESHOLD": str(ALERT_THRESHOLD),
        # Info: a failed test shows the roles' logs, with each consumer's joins and assignments.
        "FRAUDSTREAM_LOG_LEVEL": "info",
        "FRAUDSTREAM_METRICS_PORT": "0",  # several roles share this host; one test sets it
        **extra,
    }


ROLE_START_TIMEOUT = 60.0
"""A role's first act comes after its imports and connections: on a loaded machine (parallel
tests, other work) that alone can take half a minute."""


def start_role(role: str, env: dict[str, str], directory: Path, name: str) -> RoleProcess:
    return RoleProcess(role, env, directory / f"{name}.log").start()


def poll(read: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout: float = 30) -> T:
    """``read()`` again until ``done`` says so; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s")


def start_learner(
    env: dict[str, str], directory: Path, redis_url: str, topics: Topics
) -> RoleProcess:
    """``fraudstream learner``, once it has published its first version of a new deployment."""
    learner = start_role("learner", env, directory, "learner")
    try:
        poll(
            lambda: published_model(redis_url, topics),
            lambda model: model is not None and model.version == "m000001+0",
            what="the learner's first version",
            timeout=ROLE_START_TIMEOUT,
        )
    except BaseException:
        learner.kill()
        raise
    return learner


def settings_for(topics: Topics) -> Settings:
    return Settings(topic_prefix=prefix_of(topics), secret_key=SECRET)


def publish_model(redis_url: str, topics: Topics, learner: OnlineLearner) -> str:
    with redis.Redis.from_url(redis_url) as client:
        channel = ModelChannel(
            client, prefix=key_prefix(settings_for(topics)), secret_key=SECRET.encode()
        )
        return channel.publish(ServingModels(learner))


def published_model(redis_url: str, topics: Topics) -> OnlineLearner | None:
    with redis.Redis.from_url(redis_url) as client:
        channel = ModelChannel(
            client, prefix=key_prefix(settings_for(topics)), secret_key=SECRET.encode()
        )
        models = channel.load()
        return None if models is None else models.champion


def warm_redis_state(redis_url: str, topics: Topics, transactions: Sequence[Transaction]) -> None:
    with redis.Redis.from_url(redis_url) as client:
        state = RedisFeatureState(client, WINDOWS, prefix=key_prefix(settings_for(topics)))
        for start in range(0, len(transactions), 1_000):
            state.observe(transactions[start : start + 1_000])


def expected_scores(learner: OnlineLearner, stream: Stream) -> dict[str, Scored]:
    """What the in-process path answers for the live part, after the same warm-up."""
    detector = in_process_detector(copy_of(learner))
    for start in range(0, len(stream.warm_up), 1_000):
        detector.state.observe(stream.warm_up[start : start + 1_000])
    return {result.transaction_id: result for result in detector.score_many(stream.live)}


def produce(
    kafka: KafkaSettings, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> None:
    async def run() -> None:
        producer = make_producer(kafka)
        await start_with_retry(producer, kafka, "test producer")
        try:
            for start in range(0, len(records), 5_000):
                await send_batch_and_wait(
                    producer,
                    [
                        OutgoingRecord(topic, key, value)
                        for key, value in records[start : start + 5_000]
                    ],
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_transactions(
    kafka: KafkaSettings, topics: Topics, transactions: Sequence[Transaction]
) -> None:
    produce(
        kafka,
        topics.transactions,
        [(tx.card_id.encode(), tx.model_dump_json().encode()) for tx in transactions],
    )


@dataclass
class TopicRead:
    """Every record of a topic, in partition order, with its headers."""

    values: list[bytes]
    headers: list[list[tuple[str, bytes]]]

    def documents(self) -> list[dict[str, object]]:
        return [orjson.loads(value) for value in self.values]


def read_topic(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[TopicRead], bool],
    *,
    timeout: float = 120.0,
    settle: float = 0.0,
    partitions: int = 4,
) -> TopicRead:
    """Read ``topic`` from its start until ``done`` says enough (or fail after ``timeout``),
    then on for ``settle`` seconds more, to catch what should not come (a repeat)."""

    async def run() -> TopicRead:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, fetch_max_wait_ms=10)
        await start_with_retry(consumer, kafka, "test reader")
        read = TopicRead([], [])
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + timeout
            settled_at: float | None = None
            while settled_at is None or time.monotonic() < settled_at:
                if settled_at is None and done(read):
                    settled_at = time.monotonic() + settle
                if settled_at is None and time.monotonic() > deadline:
                    raise AssertionError(
                        f"{topic}: only {len(read.values)} records after {timeout} s"
                    )
                batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
                for records in batches.values():
                    for record in records:
                        read.values.append(record.value)
                        read.headers.append(list(record.headers or ()))
        finally:
            await consumer.stop()
        return read

    return asyncio.run(run())


def scores_by_id(read: TopicRead) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = defaultdict(list)
    for document in read.documents():
        found[str(document["transaction_id"])].append(document)
    return found


def distinct_ids_at_least(count: int) -> Callable[[TopicRead], bool]:
    seen: set[str] = set()
    parsed = 0

    def enough(read: TopicRead) -> bool:
        nonlocal parsed
        seen.update(orjson.loads(value)["transaction_id"] for value in read.values[parsed:])
        parsed = len(read.values)
        return len(seen) >= count

    return enough


def everything(read: TopicRead) -> bool:
    """Read on until the topic has been quiet for the settle period."""
    return True


def metrics_page(url: str) -> dict[str, float]:
    """A Prometheus text page as ``{'name{labels}': value}``."""
    text = httpx.get(url, timeout=5).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
