"""The learner: the single writer of the online model, fed by the labels topic.

Labels are learned from the vectors the workers stored at scoring time. What a label changes
outside the model (its verdict on the stored vector, the terminal's fraud count) is buffered
and written in ONE Redis transaction together with the model version that learned it; only
then are the labels' offsets committed. So after a crash the published model, the verdicts and
the fraud counts always agree, and the labels since the last publication are learned again,
once: a label is never lost and never learned twice.

Every label learned is also appended to the offline store (the vector as scored, the label,
the score and version it got), flushed first thing at each publication: before the verdicts
are written, since a label whose verdict is in Redis is "repeated" when replayed and would not
be appended again; so a committed label always has its row (a crash in between writes a row
twice, which the store's readers de-duplicate). The learner also runs the batch retrain jobs
(asked by an API replica, or on the schedule): a result changes the serving models between
two batches, and is published like any other change.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from models.detector import CHAMPION, FraudDetector, LearnOutcome, ServingModels
from models.event_time import EventTimeBounds
from models.schemas import Label, Transaction
from models.state import FeatureState, FraudReport, WindowAggregates, WindowSpec
from pipelines.label_log import log_corrections
from pipelines.lifecycle.model_channel import ModelChannel
from pipelines.lifecycle.model_commands import ModelCommands, execute
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.retrain.book import Retraining
from pipelines.retrain.offline_store import ExampleSink
from pipelines.retrying import Backoff, retry_until_done
from pipelines.state.redis_state import RedisFeatureState
from pipelines.state.redis_stores import RedisPendingStore
from pipelines.stream.kafka_clients import Consumer, RecordSender, send_batch_and_wait
from pipelines.stream.record_decoding import Record, decode_records, next_offsets
from pipelines.stream.topics import Topics
from pipelines.telemetry import ModelGauges, StateGauges, Telemetry

logger = logging.getLogger(__name__)


class DeferredFrauds(FeatureState):
    """Redis feature state whose fraud counts wait for the model version that learned them."""

    def __init__(self, state: RedisFeatureState) -> None:
        self.state = state
        self.reports: list[FraudReport] = []

    @property
    def spec(self) -> WindowSpec:
        return self.state.spec

    def observe(self, transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        return self.state.observe(transactions)

    def record_frauds(self, reports: Sequence[FraudReport]) -> None:
        self.reports.extend(reports)


def lineup(models: ServingModels) -> tuple[tuple[str, str, int], ...]:
    """Which model objects serve, under which lineage, whatever they learned since: when it
    differs from the last publication (a promotion, a snapshot, a challenger added or retired,
    a retrain's result) the models are published at once, not at the next label batch."""
    serving = [(CHAMPION, models.champion), *models.challengers.items()]
    return tuple((slot, learner.lineage, id(learner)) for slot, learner in serving)


@dataclass(frozen=True)
class LearnerOptions:
    publish_every_labels: int = 1_000
    publish_every_seconds: float = 10.0
    max_record_bytes: int = 65_536
    max_poll_records: int = 1_000
    poll_timeout_ms: int = 200
    backoff: Backoff = field(default_factory=Backoff)
    event_time: EventTimeBounds | None = None
    """Bounds on a label's ``labelled_at`` around the learner's clock (none: any)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LearnerStats:
    learned: int = 0
    corrected: int = 0
    repeated: int = 0
    unknown: int = 0
    refused: int = 0
    """Labels that would have reversed a verdict corrected as often as allowed."""
    dead_letters: int = 0
    published: int = 0
    model_version: str = ""
    healthy: bool = True
    unknown_sample: list[str] = field(default_factory=list)


class LabelLearner:
    """Learns the labels topic into the model and publishes a version every N labels or T s."""

    def __init__(
        self,
        consumer: Consumer,
        producer: RecordSender,
        topics: Topics,
        detector: FraudDetector,
        pending: RedisPendingStore,
        frauds: DeferredFrauds,
        channel: ModelChannel,
        client: redis.Redis,
        lifecycle: ModelLifecycle,
        commands: ModelCommands,
        options: LearnerOptions | None = None,
        *,
        offline: ExampleSink | None = None,
        retraining: Retraining | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.detector = detector
        self.pending = pending
        self.frauds = frauds
        self.channel = channel
        self.client = client
        self.lifecycle = lifecycle
        self.commands = commands
        self.options = options or LearnerOptions()
        self.offline = offline
        """Where learned labels are written for batch retraining (none: not kept)."""
        self.retraining = retraining
        self._clock = clock
        self.stats = LearnerStats(model_version=detector.model_version)
        self.telemetry = Telemetry()
        self.telemetry.watch(self.gauges)
        self._lag: dict[TopicPartition, int] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._unpublished = 0
        self._last_publish = time.monotonic()
        self._published_lineup = lineup(detector.serving())

    async def run(self, stop: asyncio.Event) -> None:
        """Learn until ``stop`` is set; what was learned is published before returning."""
        options = self.options
        while not stop.is_set():
            fetched = await self.consumer.getmany(
                timeout_ms=options.poll_timeout_ms, max_records=options.max_poll_records
            )
            records: list[Record] = [record for batch in fetched.values() for record in batch]
            if records:
                await self._retrying(functools.partial(self._learn_batch, records), stop)
            await self._retrying(self._manage_models, stop)
            if self._publish_due():
                await self._retrying(self._publish, stop)
        if self._offsets:
            await self._retrying(self._publish, asyncio.Event())

    def gauges(self) -> StateGauges:
        """What a scrape shows: labels not yet read, and the serving models with their rolling
        quality as learned here."""
        detector = self.detector
        threshold = detector.alerting.threshold
        serving = [(CHAMPION, detector.learner), *detector.challengers.items()]
        models = []
        for slot, learner in serving:
            figures = detector.quality[slot].figures(threshold)
            models.append(
                ModelGauges(
                    name=learner.name if slot == CHAMPION else slot,
                    version=learner.version,
                    role=CHAMPION if slot == CHAMPION else "challenger",
                    rolling_average_precision=figures.average_precision,
                    rolling_card_precision_at_k=figures.card_precision_at_k,
                )
            )
        lag = sum(self._lag.values())
        return StateGauges(consumer_lag=lag, label_backlog=None, models=tuple(models))

    async def _manage_models(self) -> None:
        """Apply the commands the API queued, then the snapshot schedule and the promotion
        policy; publish at once when the serving models changed (here, or by a retrain job
        that finished since)."""
        for command in self.commands.take():
            self.commands.answer(command.id, execute(self.lifecycle, command, self.retraining))
        self.lifecycle.tick()
        await self.publish_changes()

    async def publish_changes(self) -> None:
        """Publish now if other models serve than at the last publication."""
        if lineup(self.detector.serving()) != self._published_lineup:
            await self._publish()

    def _publish_due(self) -> bool:
        if not self._offsets:
            return False
        elapsed = time.monotonic() - self._last_publish
        return (
            self._unpublished >= self.options.publish_every_labels
            or elapsed >= self.options.publish_every_seconds
        )

    async def _learn_batch(self, records: Sequence[Record]) -> None:
        labels, dead = decode_records(
            records,
            Label,
            self.topics.dlq,
            self.options.max_record_bytes,
            context=self._input_context(),
        )
        if dead:
            await send_batch_and_wait(self.producer, dead)
            self.stats.dead_letters += len(dead)
        offline = self.offline
        on_learned = None if offline is None else offline.append
        # The labels' vectors in one round trip; kept, with the verdicts, until `_publish`.
        self.pending.prefetch(label.transaction_id for label in labels)
        outcome = self.detector.learn(labels, on_learned=on_learned) if labels else LearnOutcome()
        self._count(outcome)
        for partition, offset in next_offsets(records).items():
            self._offsets[partition] = max(self._offsets.get(partition, 0), offset)
            highwater = self.consumer.highwater(partition)
            if highwater is not None:
                self._lag[partition] = max(0, highwater - offset)

    def _input_context(self) -> dict[str, Any] | None:
        bounds = self.options.event_time
        return None if bounds is None else bounds.window(self._clock()).context()

    def _count(self, outcome: LearnOutcome) -> None:
        stats = self.stats
        self.telemetry.learned(outcome.learned)
        stats.learned += outcome.learned
        stats.corrected += outcome.corrected
        stats.repeated += outcome.repeated
        stats.unknown += len(outcome.unknown)
        stats.refused += len(outcome.refused)
        log_corrections(outcome)
        self._unpublished += (
            outcome.learned + outcome.repeated + len(outcome.unknown) + len(outcome.refused)
        )
        if outcome.unknown:
            stats.unknown_sample = (stats.unknown_sample + outcome.unknown)[-20:]
            logger.info(
                "%d labels name transactions never scored or expired, e.g. %s",
                len(outcome.unknown),
                outcome.unknown[0],
            )

    async def _publish(self) -> None:
        """The offline rows; then verdicts, fraud counts and the model in one transaction; then
        commit the offsets."""
        if self.offline is not None:
            self.offline.flush()
        pipeline = self.client.pipeline(transaction=True)
        self.pending.queue_flush(pipeline)
        if self.frauds.reports:
            self.frauds.state.queue_frauds(pipeline, self.frauds.reports)
        detector = self.detector
        threshold = detector.alerting.threshold
        quality = {name: window.figures(threshold) for name, window in detector.quality.items()}
        serving = detector.serving()
        version = self.channel.queue_publish(pipeline, serving, quality)
        pipeline.execute()
        self._published_lineup = lineup(serving)
        self.pending.discard()
        self.frauds.reports.clear()
        self.stats.published += 1
        self.stats.model_version = version
        self._unpublished = 0
        self._last_publish = time.monotonic()
        offsets, self._offsets = self._offsets, {}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as error:
            # Another learner took the partitions (there should be one): it relearns these
            # labels, which the verdicts just written mark as repeated.
            logger.warning("label offsets not committed after a rebalance: %s", error)
        logger.info("published model", extra={"model_version": version})

    async def _retrying(self, step: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        await retry_until_done(
            step, stop, self.options.backoff, what="the learner", on_health=self._set_health
        )

    def _set_health(self, healthy: bool) -> None:
        self.stats.healthy = healthy
