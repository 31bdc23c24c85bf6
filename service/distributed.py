"""The composition root of distributed mode: settings in, a running worker or learner out.

`fraudstream worker` and `fraudstream learner` call these. Both need Kafka and Redis; both stop
on SIGTERM or SIGINT after finishing (and committing) what they hold. The learner also keeps
the offline store under its data directory and runs the batch retrain jobs (asked by the API
replicas through Redis, or every ``FRAUDSTREAM_RETRAIN_EVERY`` of event time: the time of the
latest label it learned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import redis

from models.detector import FraudDetector, ServingModels
from models.learners import OnlineLearner
from models.rules.grammar import RuleFields
from models.rules.ruleset import RuleSet
from models.state import WindowSpec
from pipelines.collector import settle_after_start_up
from pipelines.lifecycle.model_channel import ModelChannel, ModelFollower
from pipelines.lifecycle.model_commands import ModelCommands, RemoteLifecycle
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.lifecycle.redis_retrain import RedisJobBook, RedisRetrainLock, RemoteRetrainJobs
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import RedisIndex
from pipelines.retrain.jobs import RetrainJobs
from pipelines.retrain.offline_store import LabelClock
from pipelines.rules.book import RuleBook, RuleFollower
from pipelines.rules.storage import RedisRuleStorage
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.cluster import ClusterRuntime
from pipelines.state.redis_state import RedisFeatureState
from pipelines.state.redis_stores import (
    DeliveredAlerts,
    RedisCooldownBook,
    RedisPendingStore,
    redis_client,
)
from pipelines.stream.alert_check import AlertTopicCheck
from pipelines.stream.kafka_clients import (
    Consumer,
    KafkaSettings,
    RecordSender,
    ensure_topics,
    fetch_metadata,
    make_consumer,
    make_producer,
    start_with_retry,
)
from pipelines.stream.label_learner import DeferredFrauds, LabelLearner, LearnerOptions
from pipelines.stream.topics import Topics
from pipelines.stream.worker import GIL_SWITCH_INTERVAL_SECONDS, TransactionWorker, WorkerOptions
from pipelines.telemetry import Telemetry
from service.bootstrap import build_detector, event_time_bounds, lifecycle_policy, seconds
from service.metrics_server import serve_metrics_page
from service.retraining import offline_store, serving_jobs
from service.settings import Settings
from service.signing import deployment_key

logger = logging.getLogger(__name__)


class DistributedSettingsError(ValueError):
    """Distributed mode asked for without the servers it runs on."""


@dataclass(frozen=True)
class Connections:
    kafka: KafkaSettings
    redis_url: str
    topics: Topics


def connections(settings: Settings) -> Connections:
    """Kafka and Redis as the settings name them; both are required outside embedded mode."""
    missing = [
        name
        for name, value in (
            ("FRAUDSTREAM_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
            ("FRAUDSTREAM_REDIS_URL", settings.redis_url),
        )
        if not value
    ]
    if missing:
        raise DistributedSettingsError(f"set {' and '.join(missing)} to run this role")
    bootstrap, redis_url = str(settings.kafka_bootstrap), str(settings.redis_url)
    kafka = KafkaSettings(
        bootstrap=bootstrap,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 4),
        max_poll_records=settings.max_poll_records,
    )
    return Connections(kafka, redis_url, Topics.with_prefix(settings.topic_prefix))


def key_prefix(settings: Settings) -> str:
    """Redis keys share the topics' prefix, so two deployments can share one Redis."""
    return f"fraudstream:{settings.topic_prefix}"


def fresh_learner(settings: Settings) -> OnlineLearner:
    return OnlineLearner(settings.learner, settings.learner_params, seed=settings.seed)


def model_channel(settings: Settings, client: redis.Redis) -> ModelChannel:
    return ModelChannel(client, prefix=key_prefix(settings), secret_key=deployment_key(settings))


def redis_detector(
    settings: Settings, client: redis.Redis, learner: OnlineLearner, *, deferred: bool
) -> tuple[FraudDetector, RedisPendingStore, RedisFeatureState]:
    """A detector whose state, pending vectors and cooldowns all live in Redis."""
    windows = WindowSpec(label_delay_seconds=seconds(settings.label_delay))
    prefix = key_prefix(settings)
    state = RedisFeatureState(client, windows, prefix=prefix)
    pending = RedisPendingStore(
        client, prefix=prefix, ttl_seconds=seconds(settings.pending_ttl), deferred=deferred
    )
    cooldowns = RedisCooldownBook(
        client, prefix=prefix, cooldown_seconds=seconds(settings.alert_cooldown)
    )
    detector = build_detector(
        settings,
        learner,
        state=DeferredFrauds(state) if deferred else state,
        pending=pending,
        cooldowns=cooldowns,
    )
    return detector, pending, state


def serve_metrics(settings: Settings, telemetry: Telemetry) -> None:
    """Prometheus metrics of a worker or the learner on ``FRAUDSTREAM_METRICS_PORT``, or on a
    free port of their own (`service.metrics_server`)."""
    serve_metrics_page(telemetry.registry, settings.host, settings.metrics_port)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the role finishes its batch, commits and returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def _kafka_clients(
    conn: Connections, settings: Settings, group: str, *topics: str
) -> AsyncIterator[tuple[Consumer, RecordSender]]:
    await ensure_topics(conn.kafka, conn.topics.names(), settings.topic_partitions)
    consumer = make_consumer(conn.kafka, *topics, group_id=group)
    producer = make_producer(conn.kafka)
    await start_with_retry(producer, conn.kafka, "producer")
    await fetch_metadata(producer, conn.topics.names())
    try:
        await start_with_retry(consumer, conn.kafka, "consumer")
        try:
            yield consumer, producer
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


def registry_of(settings: Settings, client: redis.Redis) -> ModelRegistry:
    """The registry of a deployment: artefacts in ``<data dir>/models`` (a volume every role
    mounts), the index in Redis."""
    directory = settings.data_dir / "models"
    directory.mkdir(parents=True, exist_ok=True)
    key = deployment_key(settings)
    return ModelRegistry(directory, RedisIndex(client, key_prefix(settings)), key)


def following_scorer(
    settings: Settings, conn: Connections
) -> tuple[redis.Redis, ModelFollower, FraudDetector]:
    """A scorer over Redis state (a worker, an API replica) serving the learner's latest
    publication, or a fresh learner until there is one; and the follower that keeps it so."""
    client = redis_client(conn.redis_url)
    follower = ModelFollower(
        model_channel(settings, client), poll_seconds=settings.model_poll.total_seconds()
    )
    try:
        models = follower.newer(force=True)
    except redis.RedisError as error:
        logger.warning("Redis unreachable at start-up; scoring waits for it: %s", error)
        models = None
    models = models or ServingModels(fresh_learner(settings))
    detector, _, _ = redis_detector(settings, client, models.champion, deferred=False)
    detector.serve(models)
    return client, follower, detector


def redis_rule_book(
    settings: Settings,
    client: redis.Redis,
    fields: RuleFields,
    on_change: Callable[[RuleSet], None] | None = None,
) -> RuleBook:
    """The deployment's rule sets, kept in Redis under its prefix and signed with its key."""
    return RuleBook(
        RedisRuleStorage(client, prefix=key_prefix(settings)),
        deployment_key(settings),
        fields,
        keep=settings.rules_history,
        on_change=on_change,
    )


def redis_rules(
    settings: Settings, client: redis.Redis, detector: FraudDetector
) -> tuple[RuleBook, RuleFollower]:
    """The deployment's rule sets in Redis, and a follower that keeps ``detector`` on the one
    in force; the one in force at start-up is applied now."""
    book = redis_rule_book(settings, client, detector.rule_fields(), detector.apply_rules)
    follower = RuleFollower(book, poll_seconds=settings.model_poll.total_seconds())
    try:
        rules = follower.newer(force=True)
    except redis.RedisError as error:
        logger.warning("Redis unreachable at start-up; rules apply once it answers: %s", error)
        rules = None
    if rules is not None:
        detector.apply_rules(rules)
    return book, follower


def build_cluster_runtime(settings: Settings) -> ClusterRuntime:
    """The API role's runtime: Redis state, the published models, Kafka for the rest."""
    conn = connections(settings)
    client, follower, detector = following_scorer(settings, conn)
    prefix = key_prefix(settings)
    commands = ModelCommands(client, prefix=prefix)
    lifecycle = RemoteLifecycle(
        detector,
        registry_of(settings, client),
        commands,
        deployment_key(settings),
    )
    runtime = ClusterRuntime(
        detector,
        AlertLog(capacity=settings.alert_log_size),
        kafka=conn.kafka,
        topics=conn.topics,
        client=client,
        follower=follower,
        telemetry=Telemetry(),
        lifecycle=lifecycle,
    )
    runtime.event_time = event_time_bounds(settings)
    runtime.rules, runtime.rule_follower = redis_rules(settings, client, detector)
    runtime.retraining = RemoteRetrainJobs(
        commands,
        RedisJobBook(client, prefix=prefix),
        RedisRetrainLock(client, prefix=prefix),
    )
    return runtime


def learner_jobs(
    settings: Settings, client: redis.Redis, lifecycle: ModelLifecycle
) -> tuple[RetrainJobs, LabelClock]:
    """The learner's retrain jobs over the offline store it writes, with the lock and the job
    book in Redis, at the event time of the latest label learned (or stored, after a restart)."""
    store = offline_store(settings, lifecycle.detector.features.names)
    clock = LabelClock(store, store.latest_label_time())
    prefix = key_prefix(settings)
    jobs = serving_jobs(
        settings,
        store,
        lifecycle,
        lock=RedisRetrainLock(client, prefix=prefix),
        book=RedisJobBook(client, prefix=prefix),
        event_time=clock.now,
    )
    return jobs, clock


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Score the transactions topic until stopped (one member of the workers' group)."""
    conn = connections(settings)
    stop = stop or stop_on_signals()
    client, follower, detector = following_scorer(settings, conn)
    delivered = DeliveredAlerts(
        client, prefix=key_prefix(settings), ttl_seconds=seconds(settings.pending_ttl)
    )
    async with _kafka_clients(
        conn, settings, settings.consumer_group, conn.topics.transactions
    ) as (consumer, producer):
        telemetry = Telemetry()
        alerts_topic = AlertTopicCheck(conn.kafka, conn.topics.alerts)
        await alerts_topic.start()
        worker = TransactionWorker(
            consumer,
            producer,
            conn.topics,
            detector,
            delivered,
            follower=follower,
            telemetry=telemetry,
            options=WorkerOptions(
                max_record_bytes=settings.max_record_bytes,
                max_poll_records=settings.max_poll_records,
                event_time=event_time_bounds(settings),
            ),
            alerts_topic=alerts_topic,
        )
        _, worker.rule_follower = redis_rules(settings, client, detector)
        # The alarm's changes go to the deployment's event log, beside the models' events.
        worker.drift_events = registry_of(settings, client).log_event
        serve_metrics(settings, telemetry)
        settle_after_start_up()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
        logger.info("worker started", extra={"model_version": detector.model_version})
        try:
            await worker.run(stop)
        finally:
            await alerts_topic.stop()
        logger.info(
            "worker stopped after %d transactions, %d alerts, %d dead letters",
            worker.stats.scored,
            worker.stats.alerts,
            worker.stats.dead_letters,
        )
    client.close()


async def run_learner(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Learn the labels topic and publish model versions until stopped (run exactly one)."""
    conn = connections(settings)
    stop = stop or stop_on_signals()
    client = redis_client(conn.redis_url)
    channel = model_channel(settings, client)
    detector, pending, _ = redis_detector(settings, client, fresh_learner(settings), deferred=True)
    assert isinstance(detector.state, DeferredFrauds)
    registry = registry_of(settings, client)
    key = deployment_key(settings)
    lifecycle = ModelLifecycle(detector, registry, key, policy=lifecycle_policy(settings))
    if registry.champion() is None:
        # A new deployment: models published before any learner ran (seeded by hand) are
        # registered as its first version; otherwise the configured learner starts afresh.
        published = channel.load()
        if published is not None:
            detector.serve(published)
    if not lifecycle.resume():
        for spec in settings.challengers:
            lifecycle.add_challenger(OnlineLearner(spec.learner, spec.params, seed=settings.seed))
    channel.publish(detector.serving())
    jobs, clock = learner_jobs(settings, client, lifecycle)
    async with _kafka_clients(conn, settings, settings.learner_group, conn.topics.labels) as (
        consumer,
        producer,
    ):
        role = LabelLearner(
            consumer,
            producer,
            conn.topics,
            detector,
            pending,
            detector.state,
            channel,
            client,
            lifecycle,
            ModelCommands(client, prefix=key_prefix(settings)),
            LearnerOptions(
                publish_every_labels=settings.publish_every_labels,
                publish_every_seconds=settings.publish_every.total_seconds(),
                max_record_bytes=settings.max_record_bytes,
                max_poll_records=settings.max_poll_records,
                event_time=event_time_bounds(settings),
            ),
            offline=clock,
            retraining=jobs,
        )
        serve_metrics(settings, role.telemetry)
        settle_after_start_up()
        logger.info("learner started", extra={"model_version": detector.model_version})
        schedule = None
        if settings.retrain_every is not None:
            schedule = asyncio.create_task(
                jobs.run_schedule(settings.retrain_every), name="retrain-schedule"
            )
        try:
            await role.run(stop)
        finally:
            if schedule is not None:
                schedule.cancel()
                await asyncio.gather(schedule, return_exceptions=True)
            await jobs.close()
        # A job that finished while the learner stopped changed the models: publish them.
        await role.publish_changes()
        logger.info(
            "learner stopped: %d labels learned, %d unknown",
            role.stats.learned,
            role.stats.unknown,
        )
    client.close()
