"""The scoring worker: transactions topic in; scores, alerts and dead letters out.

One batch at a time, in an order that makes a crash harmless:

1. fetch a batch (`getmany`);
2. decode it: a record that is too large, not JSON or not a `Transaction` becomes a dead letter
   (its original bytes, the reason and where it came from), and the batch goes on;
3. score the valid ones through the `FraudDetector` over Redis state (one round trip for the
   features, one for the cooldowns, one to store the vectors for the learner);
4. produce scores, the alerts not yet delivered, and the dead letters; wait for every
   acknowledgement;
5. mark those alerts delivered, then commit the batch's offsets.

A crash anywhere before step 5 replays the batch: its transactions are recognised as seen, their
first scores are re-emitted and nothing is counted twice. A failure of Redis or the broker
retries the same batch with capped backoff, without fetching more, until it succeeds or the
worker is asked to stop; the worker never exits on its own and never skips a record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from models.detector import FraudDetector
from models.schemas import Alert, Decision, Transaction
from models.scored import Scored
from models.snapshots import SnapshotError
from pipelines.kafka_clients import OutgoingRecord, send_batch_and_wait
from pipelines.model_channel import ModelFollower
from pipelines.record_decoding import Record, decode_records, next_offsets
from pipelines.redis_stores import DeliveredAlerts
from pipelines.retrying import TRANSIENT_ERRORS, Backoff, retry_until_done
from pipelines.topics import Topics

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Counters a worker keeps; `fraudstream worker` logs them, benches and tests read them."""

    batches: int = 0
    scored: int = 0
    alerts: int = 0
    dead_letters: int = 0
    retries: int = 0
    model_version: str = ""
    healthy: bool = True
    """False while a server is failing and the current batch is being retried."""
    started_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class WorkerOptions:
    max_record_bytes: int = 1_048_576
    max_poll_records: int = 1_000
    poll_timeout_ms: int = 200
    backoff: Backoff = field(default_factory=Backoff)


class Consumer(Protocol):
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]: ...


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TransactionWorker:
    """Scores the transactions topic for one member of the workers' consumer group."""

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        topics: Topics,
        detector: FraudDetector,
        delivered: DeliveredAlerts,
        *,
        follower: ModelFollower | None = None,
        options: WorkerOptions | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.detector = detector
        self.delivered = delivered
        self.follower = follower
        self.options = options or WorkerOptions()
        self.stats = WorkerStats(model_version=detector.model_version)
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and committed first."""
        options = self.options
        while not stop.is_set():
            fetched = await self.consumer.getmany(
                timeout_ms=options.poll_timeout_ms, max_records=options.max_poll_records
            )
            records: list[Record] = [record for batch in fetched.values() for record in batch]
            if records:
                await self._until_done(records, stop)
            else:
                self._follow_model()

    async def _until_done(self, records: Sequence[Record], stop: asyncio.Event) -> None:
        # Stopped with the batch unfinished, it stays uncommitted for the partitions' next owner.
        await retry_until_done(
            lambda: self.process(records),
            stop,
            self.options.backoff,
            what=f"a batch of {len(records)} transactions",
            on_health=self._set_health,
            before_retry=self.detector.pending.discard,
        )

    def _set_health(self, healthy: bool) -> None:
        self.stats.retries += not healthy
        self.stats.healthy = healthy

    async def process(self, records: Sequence[Record]) -> None:
        """Decode, score, produce, acknowledge and commit one batch."""
        self._follow_model()
        transactions, dead_letters = decode_records(
            records, Transaction, self.topics.dlq, self.options.max_record_bytes
        )
        scored = self.detector.score_many(transactions) if transactions else []
        outgoing = [
            _score_record(self.topics, tx, result)
            for tx, result in zip(transactions, scored, strict=True)
        ]
        alerted = [
            (tx, result)
            for tx, result in zip(transactions, scored, strict=True)
            if result.decision is Decision.ALERT
        ]
        undelivered = set(self.delivered.undelivered([tx.transaction_id for tx, _ in alerted]))
        fresh_alerts = [(tx, result) for tx, result in alerted if tx.transaction_id in undelivered]
        raised_at = self._clock()
        outgoing += [
            _alert_record(self.topics, tx, result, raised_at) for tx, result in fresh_alerts
        ]
        outgoing += dead_letters
        await send_batch_and_wait(self.producer, outgoing)
        if fresh_alerts:
            self.delivered.mark(tx.transaction_id for tx, _ in fresh_alerts)
        try:
            await self.consumer.commit(next_offsets(records))
        except CommitFailedError as error:
            # The partitions moved to another member mid-batch: it replays them, and the
            # replay re-emits these scores rather than counting them again.
            logger.warning("offsets not committed after a rebalance: %s", error)
        stats = self.stats
        stats.batches += 1
        stats.scored += len(scored)
        stats.alerts += len(fresh_alerts)
        stats.dead_letters += len(dead_letters)

    def _follow_model(self) -> None:
        if self.follower is None:
            return
        try:
            models = self.follower.newer()
        except (SnapshotError, *TRANSIENT_ERRORS) as error:
            logger.warning("could not check for a newer model: %s", error)
            return
        if models is not None:
            self.detector.serve(models)
            self.stats.model_version = self.detector.model_version


def _score_record(topics: Topics, tx: Transaction, scored: Scored) -> OutgoingRecord:
    return OutgoingRecord(
        topic=topics.scores,
        key=tx.card_id.encode(),
        value=orjson.dumps(scored.document()),
        headers=None,
    )


def _alert_record(
    topics: Topics, tx: Transaction, scored: Scored, raised_at: datetime
) -> OutgoingRecord:
    alert = Alert(
        transaction=tx,
        score=scored.score,
        model_version=scored.model_version,
        threshold=scored.threshold,
        reasons=tuple(reason.to_contract() for reason in scored.reasons),
        raised_at=raised_at,
    )
    return OutgoingRecord(
        topic=topics.alerts,
        key=tx.card_id.encode(),
        value=alert.model_dump_json().encode(),
        headers=None,
    )
