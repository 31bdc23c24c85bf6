"""The scoring worker: transactions topic in; scores, alerts and dead letters out.

One batch, top to bottom (`TransactionWorker.run`):

1. **fetch** a batch (`getmany`) and **decode** it: a record that is too large, not JSON or not
   a `Transaction` becomes a dead letter (its original bytes, the reason and where it came
   from), and the batch goes on (`_intake`);
2. **record** the valid ones in feature state (one round trip: the state script in Redis) and
   **score** them through the detector (one round trip to load the cooldowns and stored
   vectors the batch reads: `ScoringUnit`) (`_score`);
3. make the **writes** the scoring left, the vectors for the learner and the cooldowns, in one
   round trip, acknowledged before anything of the batch is sent (`_until_ready`);
4. **publish**: ask which of its alerts for repeated transactions were delivered before (first
   sightings were not), then produce scores, the alerts not yet delivered, and the dead
   letters, and wait for every acknowledgement (`_send`);
5. **mark** those alerts delivered, then **commit** the batch's offsets (`_until_delivered`).
   Batches scored and written while the one ahead is delivered go with the next delivery:
   one send, one commit.

A crash anywhere before step 5 replays the batch: its transactions are recognised as seen, their
first scores are re-emitted and nothing is counted twice. A failure of Redis or the broker
retries the same step with capped backoff, until it succeeds or the worker is asked to stop;
the worker never exits on its own and never skips a record.

Steps 2 and 3 run on `ScoringLanes`, one thread per step, each in batch order, so that Redis and
Python work at once on different batches: while one batch is recorded in feature state, the
batch ahead is scored, the one ahead of that is written, and the event loop delivers the batches
behind and fetches the next ones (up to `WorkerOptions.batches_in_flight` at once). The order
that matters is kept: batches are recorded one after the other (a card's transactions in
order), scored one after the other (a card alerted in one batch is in cooldown for the next)
and written one after the other; a batch that fails on a lane holds back every batch after it
there until it is done again, and offsets are committed in batch order, each after its batch's
records are acknowledged. Stopped, the worker finishes and commits the batches it holds. Why
the lanes hand over as they do is in docs/design.md ("Stream worker").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from models.detector import FraudDetector
from models.event_time import EventTimeBounds
from models.quality import QualityFigures
from models.schemas import Decision, Transaction
from models.snapshots import SnapshotError
from models.state import WindowAggregates
from pipelines.drift_watch import log_drift_events, watch_drift
from pipelines.lifecycle.model_channel import ModelFollower
from pipelines.retrying import TRANSIENT_ERRORS, Backoff, retry_until_done
from pipelines.rules.book import RuleFollower
from pipelines.state.observation import observing
from pipelines.stream.kafka_clients import (
    Consumer,
    OutgoingRecord,
    RecordSender,
    send_batch_and_wait,
)
from pipelines.stream.lanes import InFlight, ScoringLanes, Signal
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
    the lanes, several being delivered, and the next ones fetched and decoded, so that the
    state lane never waits for a batch to be fetched."""
    event_time: EventTimeBounds | None = None
    """Bounds on a transaction's timestamp around the worker's clock (none: any)."""


Clock = Callable[[], datetime]


class AlertsTopic(Protocol):
    """The alerts topic read back (`AlertTopicCheck`)."""

    async def sent(self, alerts: Iterable[tuple[str, str]]) -> set[str]: ...


GIL_SWITCH_INTERVAL_SECONDS = 0.0005
"""How often a worker's threads may take the GIL from one another (`sys.setswitchinterval`):
a Redis reply must not wait long for the thread that reads it."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Batch:
    """A fetched batch, decoded, and its passage through the lanes."""

    records: Sequence[Record]
    transactions: list[Transaction]
    """The valid ones, in order."""
    sources: Sequence[Record]
    """The record each of ``transactions`` was decoded from."""
    dead_letters: list[OutgoingRecord]
    lanes: InFlight[Verdicts]
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
        self.rule_follower: RuleFollower | None = None
        """Keeps the scoring on the deployment's rule set in force (none: no rules)."""
        self.options = options or WorkerOptions()
        self.stats = WorkerStats(model_version=detector.model_version)
        self.telemetry = telemetry or Telemetry()
        self.telemetry.watch(self.gauges)
        self.telemetry.watch_rules(lambda: self.detector.rule_decisions)
        watch_drift(self.telemetry, detector)
        self.drift_events: Callable[[str, str, str], None] | None = None
        """Where the drift alarm's changes are written (the registry's event log; none: not
        written)."""
        self._lag: dict[TopicPartition, int] = {}
        self._clock = clock
        # Alerts this worker sent lately: a delivery retried after its alerts were sent, and
        # before they were marked, does not send them again.
        self._sent_alerts: OrderedDict[str, None] = OrderedDict()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batches in hand are finished and committed first.

        `_intake` fetches and decodes batches and starts each on the lanes at once; this loop
        takes them in order, waits until each is scored and written, and delivers it with the
        batches right behind it that are ready too.
        """
        lanes = ScoringLanes(self.detector.state)
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue()
        slots = asyncio.Semaphore(max(1, self.options.batches_in_flight))
        intake = asyncio.create_task(self._intake(stop, lanes, batches, slots))
        behind: deque[_Batch | None] = deque()  # taken from the queue, not yet delivered
        try:
            while (head := behind.popleft() if behind else await batches.get()) is not _END:
                verdicts = await self._until_ready(head, lanes, stop)
                if verdicts is None:
                    break
                group = [(head, verdicts), *self._ready_behind(behind, batches)]
                if not await self._until_delivered(group, stop):
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
        lanes: ScoringLanes,
        batches: asyncio.Queue[_Batch | None],
        slots: asyncio.Semaphore,
    ) -> None:
        """Fetch and decode batches, start each on the lanes, and queue it for delivery."""
        options = self.options
        turn = 0
        ahead: Signal | None = None
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
                    await lanes.between_batches(self._follow_model)
                    continue
                bounds = options.event_time
                decoded = decode_batch(
                    records,
                    Transaction,
                    self.topics.dlq,
                    options.max_record_bytes,
                    context=None if bounds is None else bounds.window(self._clock()).context(),
                )
                # The state request is prepared now, so that it is ready when the state lane's
                # turn comes for it.
                observation = observing(self.detector.state, decoded.valid)
                passage = InFlight[Verdicts](turn, decoded.valid, observation, after=ahead)
                batch = _Batch(records, decoded.valid, decoded.sources, decoded.dead, passage)
                lanes.start(passage, partial(self._score, batch, lanes))
                ahead = passage.loaded
                turn += 1
                batches.put_nowait(batch)
        finally:
            batches.put_nowait(_END)

    def _score(
        self, batch: _Batch, lanes: ScoringLanes, observed: list[WindowAggregates]
    ) -> Verdicts:
        """On the scoring lane, in batch order: score a batch recorded in feature state, and
        start its writes on the writes lane. The batch behind is told once this one has loaded
        what it reads from the stores (`InFlight.loaded`)."""
        self._follow_model()
        started = time.perf_counter()
        loaded = batch.lanes.loaded
        try:
            verdicts = score_batch(
                self.detector,
                batch.transactions,
                observed,
                on_loaded=loaded.set,
                write_later=True,
                skip_conflicts=True,
            )
        finally:
            loaded.set()  # an empty or failed batch holds nobody up either
        batch.conflicts = conflict_letters(
            batch.transactions, batch.sources, verdicts, self.topics.dlq
        )
        lanes.start_writes(batch.lanes, verdicts.writes)
        self.telemetry.scored(len(verdicts.scored), time.perf_counter() - started, alerts=0)
        if self.drift_events is not None:
            log_drift_events(self.detector, self.drift_events)
        return verdicts

    async def _until_ready(
        self, batch: _Batch, lanes: ScoringLanes, stop: asyncio.Event
    ) -> Verdicts | None:
        """Wait until ``batch`` is scored and its writes made, retried until done (a step that
        succeeded is not done again); None if stopped first."""
        verdicts: Verdicts | None = None
        score = partial(self._score, batch, lanes)

        async def attempt() -> None:
            nonlocal verdicts
            if verdicts is None:
                verdicts = await lanes.scored(batch.lanes, score)
            await lanes.written(batch.lanes, verdicts.writes)

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
        done already: delivered with it, in one send and one commit, rather than each paying
        a round trip to the broker and a commit of its own under light traffic."""
        while not batches.empty():
            behind.append(batches.get_nowait())
        ready: list[tuple[_Batch, Verdicts]] = []
        while behind and (batch := behind[0]) is not _END:
            passage = batch.lanes
            if not ScoringLanes.done(passage):
                break
            assert passage.scoring is not None
            ready.append((batch, passage.scoring.result()))
            passage.scoring = passage.writing = None
            behind.popleft()
        return ready

    async def _until_delivered(
        self, group: list[tuple[_Batch, Verdicts]], stop: asyncio.Event
    ) -> bool:
        """Send, mark and commit the scored and written batches of ``group``, retried until
        done (a step that succeeded is not done again). Stopped first, the group stays
        uncommitted for the partitions' next owner, and so do the batches behind it.

        The group's alerts are marked right after their acknowledgement, before anything else
        is sent: a crash in between repeats them on replay, unless the replay finds them in
        the alerts topic (`_not_in_topic`), so that window is kept as short as it can be."""
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

    def _set_health(self, healthy: bool) -> None:
        self.stats.retries += not healthy
        self.stats.healthy = healthy

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
        in_group: set[str] = set()
        for batch, verdicts in group:
            # A repeat's alert is not sent again when its first sighting's was, by this worker
            # lately or by a batch ahead of it in this very group.
            alerts = [
                (tx, s)
                for tx, s in verdicts.alerts
                if tx.transaction_id not in sent and tx.transaction_id not in in_group
            ]
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
            in_group.update(tx.transaction_id for tx, _ in alerts)
        await send_batch_and_wait(self.producer, outgoing)
        for tx, _ in fresh:
            sent[tx.transaction_id] = None
        while len(sent) > _SENT_ALERTS_KEPT:
            sent.popitem(last=False)
        self.stats.scored += sum(len(verdicts.scored) for _, verdicts in group)
        raised = sum(result.decision is Decision.ALERT for _, result in fresh)
        self.stats.alerts += raised
        self.telemetry.alerted(raised)
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

    def _follow_rules(self) -> None:
        if self.rule_follower is None:
            return
        try:
            rules = self.rule_follower.newer()
        except TRANSIENT_ERRORS as error:
            logger.warning("could not check for a newer rule set: %s", error)
            return
        if rules is not None:
            self.detector.apply_rules(rules)

    def _published_quality(self) -> dict[str, QualityFigures]:
        assert self.follower is not None
        try:
            return self.follower.channel.quality()
        except (SnapshotError, *TRANSIENT_ERRORS):
            return {}

    def _follow_model(self) -> None:
        self._follow_rules()
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


def _figure(published: dict[str, QualityFigures], slot: str, name: str) -> float:
    figures = published.get(slot)
    return math.nan if figures is None else float(getattr(figures, name))
