"""The scoring worker: transactions topic in; scores, alerts and dead letters out.

Each batch goes through the same steps, in an order that makes a crash harmless:

1. fetch a batch (`getmany`);
2. decode it: a record that is too large, not JSON or not a `Transaction` becomes a dead letter
   (its original bytes, the reason and where it came from), and the batch goes on;
3. record the valid ones in feature state (one round trip: the state script in Redis), then
   score them through the `FraudDetector` (one round trip to read the cooldowns);
4. make the writes the scoring left: the vectors for the learner and the cooldowns, in one
   round trip, acknowledged before anything of the batch is sent;
5. ask which of its alerts for repeated transactions were delivered before (first sightings
   were not: nothing is asked of a batch without repeats); produce scores, the alerts not
   yet delivered, and the dead letters; wait for every acknowledgement;
6. mark those alerts delivered, then commit the batch's offsets. Batches scored and written
   while the one ahead is delivered go with the next delivery: one send, one commit.

A crash anywhere before step 6 replays the batch: its transactions are recognised as seen, their
first scores are re-emitted and nothing is counted twice. A failure of Redis or the broker
retries the same step with capped backoff, until it succeeds or the worker is asked to stop;
the worker never exits on its own and never skips a record.

Batches in flight
    Recording a batch in feature state mostly waits on Redis (the state script runs there);
    scoring, decoding and delivering mostly run Python. Done one after the other, Redis and the
    worker take turns and each idles half the time. So steps 3 and 4 run on three threads of
    their own, *lanes*, each in batch order: the state lane records a batch while the scoring
    lane scores the batch before it, the writes lane makes the writes of the one before that,
    and the event loop delivers the batches behind; the sync Redis client releases the GIL while
    it waits. Up to `WorkerOptions.batches_in_flight` are held at once, so that the next batch
    is fetched and decoded before the state lane is free for it: with three, the state lane
    idled 20 to 40 ms a batch waiting for one. Recording touches only feature state, never the
    cooldowns or pending vectors the batch ahead may still be writing. The order that matters is
    kept: batches are recorded one after the other (a card's transactions in order), scored one
    after the other (a card alerted in one batch is in cooldown for the next) and written one
    after the other; a batch that fails on a lane holds back every batch after it there until it
    is done again, and offsets are committed in batch order, each after its batch's records are
    acknowledged. Stopped, the worker finishes and commits the batches it holds.

    Redis runs one command at a time, so the state script of the batch behind must not run
    while the batch ahead reads its cooldowns: a batch is recorded once the batch ahead has
    loaded what it reads (`_Batch.loaded`), and the script then runs while that batch is
    scored in Python. Recorded any earlier, the script held up the batch ahead's reads, and
    the two lanes took turns again. The script's request is prepared when the batch is decoded
    (`FeatureState.observing`) and sent by the scoring lane's thread the moment it raises the
    signal (`Signal.on_set`): passed through the event loop, the signal waited behind whatever
    the loop was doing, 10 to 30 ms a batch; waking the state lane's thread to send it, 2 to 8
    ms, the time that thread took to win the GIL. The state lane's thread only reads the
    answer. The wait is only for speed, never for correctness, so it gives up after
    `RECORD_GATE_SECONDS`: a batch ahead that failed before loading holds nothing up for long.
    The threads hand the GIL over every `GIL_SWITCH_INTERVAL_SECONDS`, not Python's default 5
    ms: a Redis reply must not wait that long for the thread that reads it.

    The writes lane keeps a batch's writes off the path every batch takes: made on the scoring
    lane, they queued in Redis behind the next batch's state script and held up the scoring
    of that batch for their round trip (7 to 10 ms a batch of 1,000). Until Redis acknowledges
    them, the stores lay them over their own reads (`pipelines.state.writes_in_flight`), so the next
    batch reads the cooldowns and vectors the batch ahead wrote, as it did when they were
    written first.

    A batch scored again after a failure is recorded again, on the state lane between two
    batches: its ids are seen by then, so state answers their first sightings' aggregates
    and the detector re-emits whatever first answers were stored, exactly as a replay after
    a crash is scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from models.detector import FraudDetector
from models.event_time import EventTimeBounds
from models.quality import QualityFigures
from models.schemas import Transaction
from models.snapshots import SnapshotError
from models.state import Observation, WindowAggregates
from pipelines.lifecycle.model_channel import ModelFollower
from pipelines.retrying import TRANSIENT_ERRORS, Backoff, retry_until_done
from pipelines.stream.kafka_clients import (
    Consumer,
    OutgoingRecord,
    RecordSender,
    send_batch_and_wait,
)
from pipelines.stream.lanes import Lane, Lanes, OutOfTurnError, Signal, retrieved
from pipelines.stream.record_decoding import (
    ORIGINAL_BYTES_HEADER,
    Record,
    decode_batch,
    next_offsets,
)
from pipelines.stream.scoring_batch import (
    AlertMarks,
    Alerts,
    Verdicts,
    conflict_letters,
    outgoing_records,
    score_batch,
    undelivered_alerts,
)
from pipelines.stream.topics import Topics
from pipelines.telemetry import ModelGauges, StateGauges, Telemetry

logger = logging.getLogger(__name__)

_SENT_ALERTS_KEPT = 100_000


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
    batches_in_flight: int = 10
    """Fetched and not yet committed: one recorded in state, one scored and one written, on
    the lanes, several delivered one after the other (each waits for its writes, the broker's
    acknowledgement, its alerts' marks and its commit), and the next ones fetched and decoded,
    waiting for the state lane. With six, the state lane idled 20 to 35 ms a batch waiting
    for the next one to be fetched."""
    event_time: EventTimeBounds | None = None
    """Bounds on a transaction's timestamp around the worker's clock (none: any)."""


Clock = Callable[[], datetime]


class AlertsTopic(Protocol):
    """The alerts topic read back (`AlertTopicCheck`)."""

    async def sent(self, alerts: Iterable[tuple[str, str]]) -> set[str]: ...


RECORD_GATE_SECONDS = 1.0
"""Longest a batch waits, before it is recorded, for the batch ahead to load its reads."""

GIL_SWITCH_INTERVAL_SECONDS = 0.0005
"""How often a worker's threads may take the GIL from one another (`sys.setswitchinterval`)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Batch:
    """A fetched batch, decoded; `scoring` is its steps on the lanes."""

    turn: int
    records: Sequence[Record]
    transactions: list[Transaction]
    dead_letters: list[OutgoingRecord]
    observation: Observation | None
    """Its state request, prepared when it was decoded, while the state lane waits on the
    batches ahead; taken by its first recording."""
    after: Signal | None
    """The batch ahead's `loaded`: this one is recorded in state once it is set (or after
    `RECORD_GATE_SECONDS`), its request sent by the thread that sets it."""
    loaded: Signal = field(default_factory=Signal)
    """Set once its scoring has read what it needs from Redis, or has failed: from then on
    the batch leaves Redis to the state script of the batch behind it."""
    scoring: asyncio.Future[Verdicts] | None = None
    writing: Future[None] | None = None
    """Its scoring's writes on the writes lane, started as soon as it is scored."""
    recorded: bool = False
    """Its turn on the state lane is done: any later attempt records it again (as seen)."""
    sources: Sequence[Record] = ()
    """The record each of ``transactions`` was decoded from."""
    conflicts: list[OutgoingRecord] = field(default_factory=list)
    """Dead letters of its repeated ids with other content than first scored, once scored."""


_END = None


class TransactionWorker:
    """Scores the transactions topic for one member of the workers' consumer group."""

    def __init__(
        self,
        consumer: Consumer,
        producer: RecordSender,
        topics: Topics,
        detector: FraudDetector,
        delivered: AlertMarks,
        *,
        follower: ModelFollower | None = None,
        options: WorkerOptions | None = None,
        clock: Clock = _utc_now,
        telemetry: Telemetry | None = None,
        alerts_topic: AlertsTopic | None = None,
    ) -> None:
        self.consumer = consumer
        self.alerts_topic = alerts_topic
        self.producer = producer
        self.topics = topics
        self.detector = detector
        self.delivered = delivered
        self.follower = follower
        self.options = options or WorkerOptions()
        self.stats = WorkerStats(model_version=detector.model_version)
        self.telemetry = telemetry or Telemetry()
        self.telemetry.watch(self.gauges)
        self._lag: dict[TopicPartition, int] = {}
        self._clock = clock
        # Alerts this worker sent lately: a delivery retried after its alerts were sent, and
        # before they were marked, does not send them again.
        self._sent_alerts: OrderedDict[str, None] = OrderedDict()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batches in hand are finished and committed first."""
        lanes = Lanes()
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue()
        slots = asyncio.Semaphore(max(1, self.options.batches_in_flight))
        intake = asyncio.create_task(self._intake(stop, lanes, batches, slots))
        behind: deque[_Batch | None] = deque()  # taken from the queue, not yet delivered
        try:
            while (head := behind.popleft() if behind else await batches.get()) is not _END:
                verdicts = await self._until_ready(head, lanes, stop)
                group = [(head, verdicts), *self._ready_behind(behind, batches)] if verdicts else []
                if not group or not await self._until_delivered(group, stop):
                    break
                for _ in group:
                    slots.release()
        finally:
            if not intake.done():
                intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await intake  # its error, if it failed, is the worker's
            await asyncio.get_running_loop().run_in_executor(None, lanes.close)

    async def _intake(
        self,
        stop: asyncio.Event,
        lanes: Lanes,
        batches: asyncio.Queue[_Batch | None],
        slots: asyncio.Semaphore,
    ) -> None:
        """Fetch, decode and queue batches, each sent to the lanes at once to be scored."""
        options = self.options
        turn = 0
        loaded: Signal | None = None
        try:
            while not stop.is_set():
                await slots.acquire()
                if stop.is_set():
                    break
                fetched = await self.consumer.getmany(
                    timeout_ms=options.poll_timeout_ms, max_records=options.max_poll_records
                )
                records: list[Record] = [record for batch in fetched.values() for record in batch]
                if not records:
                    slots.release()
                    await lanes.scoring.call(self._follow_model)
                    continue
                bounds = options.event_time
                decoded = decode_batch(
                    records,
                    Transaction,
                    self.topics.dlq,
                    options.max_record_bytes,
                    context=None if bounds is None else bounds.window(self._clock()).context(),
                )
                transactions, dead_letters = decoded.valid, decoded.dead
                # Prepared here, the request is ready when the state lane's turn comes: prepared
                # there, after the batch ahead's answer, it made every batch wait 3 to 10 ms.
                observation = self.detector.state.observing(transactions)
                batch = _Batch(turn, records, transactions, dead_letters, observation, loaded)
                batch.sources = decoded.sources
                batch.scoring = self._submit(batch, lanes)
                loaded = batch.loaded
                turn += 1
                batches.put_nowait(batch)
        finally:
            batches.put_nowait(_END)

    async def _until_ready(
        self, batch: _Batch, lanes: Lanes, stop: asyncio.Event
    ) -> Verdicts | None:
        """Score ``batch`` and make its writes, retried until done (a step that succeeded is not
        done again); None if stopped first."""
        verdicts: Verdicts | None = None

        async def attempt() -> None:
            nonlocal verdicts
            if verdicts is None:
                verdicts = await self._scored(batch, lanes)
            await self._written(batch, verdicts.writes, lanes)

        done = await retry_until_done(
            attempt,
            stop,
            self.options.backoff,
            what=f"a batch of {len(batch.records)} transactions",
            on_health=self._set_health,
        )
        return verdicts if done else None

    @staticmethod
    def _ready_behind(
        behind: deque[_Batch | None], batches: asyncio.Queue[_Batch | None]
    ) -> list[tuple[_Batch, Verdicts]]:
        """The batches right behind the one about to be delivered whose scoring and writes are
        done already: delivered with it, in one send and one commit. Batches of a few records
        (light traffic) each paid a round trip to the broker and a commit, one after the
        other, and queued behind one another for tens of milliseconds."""
        while not batches.empty():
            behind.append(batches.get_nowait())
        ready: list[tuple[_Batch, Verdicts]] = []
        while behind and (batch := behind[0]) is not _END:
            scoring = batch.scoring
            if not (_succeeded(scoring) and _succeeded(batch.writing)):
                break
            assert scoring is not None
            ready.append((batch, scoring.result()))
            batch.scoring = batch.writing = None
            behind.popleft()
        return ready

    async def _until_delivered(
        self, group: list[tuple[_Batch, Verdicts]], stop: asyncio.Event
    ) -> bool:
        """Send, mark and commit the scored and written batches of ``group``, retried until
        done (a step that succeeded is not done again). Stopped first, the group stays
        uncommitted for the partitions' next owner, and so do the batches behind it.

        The group's alerts are marked right after their acknowledgement, before anything else
        is sent. A crash in between repeats them on replay, unless the replay finds them in
        the alerts topic (`_not_in_topic`); marking beside the sending of the next batches made
        that window longer (the kill -9 test caught a repeated alert in 3 runs of 10 instead of
        about 1, before replays looked)."""
        sent: Alerts | None = None
        marked = False

        async def attempt() -> None:
            nonlocal sent, marked
            if sent is None:
                sent = await self._send(group)
            if sent and not marked:
                await self._mark(sent)
            marked = True
            await self._commit([batch for batch, _ in group])

        return await retry_until_done(
            attempt,
            stop,
            self.options.backoff,
            what=f"delivering {sum(len(batch.records) for batch, _ in group)} transactions",
            on_health=self._set_health,
        )

    async def _scored(self, batch: _Batch, lanes: Lanes) -> Verdicts:
        scoring, batch.scoring = batch.scoring, None
        if scoring is None:  # a retry
            scoring = self._submit(batch, lanes)
        try:
            return await scoring
        except OutOfTurnError:
            # A batch ahead of this one failed and has been done since: now it is its turn.
            return await self._submit(batch, lanes)

    def _submit(self, batch: _Batch, lanes: Lanes) -> asyncio.Future[Verdicts]:
        task = asyncio.ensure_future(self._recorded_then_scored(batch, lanes))
        task.add_done_callback(retrieved)
        return task

    async def _recorded_then_scored(self, batch: _Batch, lanes: Lanes) -> Verdicts:
        state = self.detector.state
        score = partial(self._score, batch, lanes.writes)
        try:
            if batch.recorded:
                # Recorded already, so this is all repeats: their first answers, read between
                # two batches on the state lane, which may be recording later batches meanwhile.
                observed = await lanes.state.call(partial(state.observe, batch.transactions))
                return await lanes.scoring.submit(batch.turn, partial(score, observed))
            recording = partial(self._recorded, batch, state.observing)
            return await lanes.state.submit_then(batch.turn, recording, lanes.scoring, score)
        except OutOfTurnError:
            if batch.recorded:  # its scoring's turn was taken: it reads nothing until it comes
                batch.loaded.set()
            raise

    async def _written(self, batch: _Batch, writes: Callable[[], None], lanes: Lanes) -> None:
        """Wait for the writes of the batch's scoring, made again after a failure."""
        writing, batch.writing = batch.writing, None
        if writing is not None:
            try:
                await asyncio.wrap_future(writing)
                return
            except OutOfTurnError:
                pass  # the writes of a batch ahead failed and have been made since
        await lanes.writes.submit(batch.turn, writes)

    @classmethod
    def _recorded(
        cls,
        batch: _Batch,
        observing: Callable[[list[Transaction]], Observation],
    ) -> list[WindowAggregates]:
        """On the state lane: the batch recorded in feature state, in its turn."""
        observation, batch.observation = batch.observation, None
        if observation is None:  # taken by an attempt that failed
            observation = observing(batch.transactions)
        observed = cls._gated(batch.after, observation)
        batch.recorded = True
        return observed

    @staticmethod
    def _gated(after: Signal | None, observation: Observation) -> list[WindowAggregates]:
        """On the state lane: a prepared ``observation`` made once the batch ahead has loaded
        its reads, its request sent by the thread that ends the wait (`Signal.on_set`): woken
        by the signal, the state lane's thread took 2 to 8 ms to win the GIL and send it."""
        if after is not None:
            after.on_set(observation.start)
            after.wait(RECORD_GATE_SECONDS)
        return observation()

    def _set_health(self, healthy: bool) -> None:
        self.stats.retries += not healthy
        self.stats.healthy = healthy

    def _score(self, batch: _Batch, writes: Lane, observed: list[WindowAggregates]) -> Verdicts:
        """Score a recorded batch: on the scoring lane, in batch order. The batch behind is told
        once this one's reads from Redis are done (`_Batch.loaded`); the writes go to
        ``writes`` at once."""
        self._follow_model()
        started = time.perf_counter()
        try:
            verdicts = score_batch(
                self.detector,
                batch.transactions,
                observed,
                on_loaded=batch.loaded.set,
                write_later=True,
                skip_conflicts=True,
            )
        finally:
            batch.loaded.set()  # an empty or failed batch holds nobody up either
        batch.conflicts = conflict_letters(
            batch.transactions, batch.sources, verdicts, self.topics.dlq
        )
        batch.writing = writes.start(batch.turn, verdicts.writes)
        self.telemetry.scored(len(verdicts.scored), time.perf_counter() - started, alerts=0)
        return verdicts

    async def _send(self, group: list[tuple[_Batch, Verdicts]]) -> Alerts:
        """Produce the records of scored batches and wait for them; the alerts it sent.

        Which alerts were delivered before is asked here, off the event loop, for repeated
        transactions alone: a first sighting's alert is new. The batches ahead sent their own
        alerts by now; this worker remembers those it sent, marked or not yet.
        """
        sent = self._sent_alerts
        outgoing: list[OutgoingRecord] = []
        fresh: Alerts = []
        raised_at = self._clock()
        for batch, verdicts in group:
            alerts = [(tx, s) for tx, s in verdicts.alerts if tx.transaction_id not in sent]
            if verdicts.repeats is None or any(
                tx.transaction_id in verdicts.repeats for tx, _ in alerts
            ):
                alerts = await asyncio.to_thread(
                    undelivered_alerts, self.delivered, alerts, verdicts.repeats
                )
                alerts = await self._not_in_topic(alerts, verdicts.repeats)
            outgoing += outgoing_records(
                self.topics,
                verdicts.scored_transactions(batch.transactions),
                verdicts.scored,
                alerts,
                raised_at,
                batch.dead_letters + batch.conflicts,
            )
            fresh += alerts
        await send_batch_and_wait(self.producer, outgoing)
        for tx, _ in fresh:
            sent[tx.transaction_id] = None
        while len(sent) > _SENT_ALERTS_KEPT:
            sent.popitem(last=False)
        self.stats.scored += sum(len(verdicts.scored) for _, verdicts in group)
        self.stats.alerts += len(fresh)
        self.telemetry.alerted(len(fresh))
        return fresh

    async def _not_in_topic(self, alerts: Alerts, repeats: frozenset[str] | None) -> Alerts:
        """Those of a replay's unmarked ``alerts`` not found in the alerts topic: a worker
        that crashed after the broker acknowledged them, before marking them, sent them; the
        ones found are marked now instead of sent again."""
        replayed = [
            (tx.transaction_id, tx.card_id)
            for tx, _ in alerts
            if repeats is None or tx.transaction_id in repeats
        ]
        if self.alerts_topic is None or not replayed:
            return alerts
        found = await self.alerts_topic.sent(replayed)
        if found:
            logger.info(
                "%d alerts of a replay were sent before; not sending them again", len(found)
            )
            await self._mark([(tx, s) for tx, s in alerts if tx.transaction_id in found])
        return [(tx, s) for tx, s in alerts if tx.transaction_id not in found]

    async def _mark(self, alerts: Alerts) -> None:
        # Off the event loop: the mark waits behind whatever script Redis is running.
        await asyncio.to_thread(self.delivered.mark, [tx.transaction_id for tx, _ in alerts])

    async def _commit(self, batches: list[_Batch]) -> None:
        committed = next_offsets([record for batch in batches for record in batch.records])
        try:
            await self.consumer.commit(committed)
        except CommitFailedError as error:
            # The partitions moved to another member mid-batch: it replays them, and the
            # replay re-emits these scores rather than counting them again.
            logger.warning("offsets not committed after a rebalance: %s", error)
        stats = self.stats
        stats.batches += len(batches)
        for batch in batches:
            stats.dead_letters += len(batch.dead_letters) + len(batch.conflicts)
            for letter in batch.dead_letters:
                oversize = any(name == ORIGINAL_BYTES_HEADER for name, _ in letter.headers or ())
                self.telemetry.dead_lettered("oversize" if oversize else "invalid")
            for _ in batch.conflicts:
                self.telemetry.dead_lettered("conflict")
        for partition, offset in committed.items():
            highwater = self.consumer.highwater(partition)
            if highwater is not None:
                self._lag[partition] = max(0, highwater - offset)

    def gauges(self) -> StateGauges:
        """What a scrape shows: the lag behind the partitions' ends, as of the last batch, and
        the serving models with the quality the learner last published."""
        published = {} if self.follower is None else self._published_quality()
        statuses = [("champion", self.detector.learner), *self.detector.challengers.items()]
        return StateGauges(
            consumer_lag=sum(self._lag.values()),
            label_backlog=None,
            models=tuple(
                ModelGauges(
                    name=learner.name if slot == "champion" else slot,
                    version=learner.version,
                    role=slot if slot == "champion" else "challenger",
                    rolling_average_precision=_figure(published, slot, "average_precision"),
                    rolling_card_precision_at_k=_figure(published, slot, "card_precision_at_k"),
                )
                for slot, learner in statuses
            ),
        )

    def _published_quality(self) -> dict[str, QualityFigures]:
        assert self.follower is not None
        try:
            return self.follower.channel.quality()
        except (SnapshotError, *TRANSIENT_ERRORS):
            return {}

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


def _succeeded(future: asyncio.Future[Any] | Future[Any] | None) -> bool:
    """Whether ``future`` (of the event loop or of a lane's thread) is done without error."""
    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    )


def _figure(published: dict[str, QualityFigures], slot: str, name: str) -> float:
    figures = published.get(slot)
    return math.nan if figures is None else float(getattr(figures, name))
