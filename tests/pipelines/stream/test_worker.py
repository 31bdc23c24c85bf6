"""The worker's batch pipeline with in-memory fakes: order, retries, stopping, repeats.

A batch is recorded in state on the worker's state lane while the one before it is scored on
the scoring lane and the one before that is delivered; these tests pin what that overlap must
never change. The real servers are in ``test_distributed.py``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis
from aiokafka.structs import TopicPartition

from models.alerting import AlertPolicy, AlertPolicyConfig, MemoryCooldownBook
from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.schemas import Transaction
from models.state import FraudReport, WindowAggregates, WindowSpec
from pipelines.retrying import Backoff
from pipelines.stream.topics import Topics
from pipelines.stream.worker import TransactionWorker, WorkerOptions
from tests.builders import make_tx

TOPICS = Topics.with_prefix("test.")
PARTITIONS = 3


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeConsumer:
    """Hands out the given batches, then nothing; commits go to the shared ``log``.

    ``drained`` is set once every batch has been handed out and committed: a worker holds
    several batches at once, so having handed out the last says nothing of the ones before.
    """

    def __init__(self, batches: Sequence[Sequence[Transaction]], log: list[Any]) -> None:
        self._batches = list(batches)
        self._offsets = [0] * PARTITIONS
        self._committed = [0] * PARTITIONS
        self.log = log
        self.handed = 0
        self.drained = asyncio.Event()

    def _check_drained(self) -> None:
        if not self._batches and self._committed == self._offsets:
            self.drained.set()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        if not self._batches:
            self._check_drained()
            await asyncio.sleep(timeout_ms / 1_000)
            return {}
        fetched: dict[TopicPartition, list[Any]] = {}
        for tx in self._batches.pop(0):
            partition = partition_of(tx.card_id)
            record = FakeRecord(
                TOPICS.transactions,
                partition,
                self._offsets[partition],
                tx.card_id.encode(),
                tx.model_dump_json().encode(),
            )
            self._offsets[partition] += 1
            fetched.setdefault(TopicPartition(TOPICS.transactions, partition), []).append(record)
        self.handed += 1
        return fetched

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        self.log.append(("commit", dict(offsets or {})))
        for partition, offset in (offsets or {}).items():
            self._committed[partition.partition] = offset
        self._check_drained()

    def highwater(self, partition: TopicPartition) -> int | None:
        """Every batch handed out so far: the worker's lag is what it has not committed."""
        offset: int = self._offsets[partition.partition]
        return offset


class FakeProducer:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        self.log.append(("send", topic, orjson.loads(value or b"null")))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FakeMarks:
    def __init__(self) -> None:
        self.delivered: set[str] = set()

    def undelivered(self, transaction_ids: list[str]) -> list[str]:
        return [tid for tid in transaction_ids if tid not in self.delivered]

    def mark(self, transaction_ids: Any) -> None:
        self.delivered.update(transaction_ids)


class RecordingState:
    """In-memory state that logs each batch it observes and can fail the next ``fail`` calls."""

    def __init__(self, spec: WindowSpec) -> None:
        self._inner = InMemoryFeatureState(spec)
        self.observed: list[list[str]] = []
        self.fail = 0

    @property
    def spec(self) -> WindowSpec:
        return self._inner.spec

    def observe(self, transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        ids = [tx.transaction_id for tx in transactions]
        if self.fail:
            self.fail -= 1
            self.observed.append(["failed", *ids])
            raise redis.ConnectionError("Redis went away")
        self.observed.append(ids)
        return self._inner.observe(transactions)

    def record_frauds(self, reports: Sequence[FraudReport]) -> None:
        self._inner.record_frauds(reports)


def make_detector(state: Any, threshold: float = 0.5) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    learner = OnlineLearner("logistic")
    return FraudDetector(
        features, state, learner, alerting=AlertPolicy(AlertPolicyConfig(threshold=threshold))
    )


def make_batches(count: int, size: int) -> list[list[Transaction]]:
    """Batches in the order the worker reads them: partition by partition (a card's stay in
    order, all within one partition)."""
    batches = [
        [
            make_tx(b * size + i, hours=(b * size + i) / 60, card=f"c{(b * size + i) % 7}")
            for i in range(size)
        ]
        for b in range(count)
    ]
    return [sorted(batch, key=lambda tx: partition_of(tx.card_id)) for batch in batches]


def partition_of(card_id: str) -> int:
    return int(card_id.removeprefix("c")) % PARTITIONS


async def run_until_drained(
    worker: TransactionWorker, consumer: FakeConsumer, stop: asyncio.Event
) -> None:
    running = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(consumer.drained.wait(), 10)
    stop.set()
    await asyncio.wait_for(running, 10)


def make_worker(
    batches: list[list[Transaction]], state: Any, *, threshold: float = 0.5
) -> tuple[TransactionWorker, FakeConsumer, list[Any], FakeMarks]:
    log: list[Any] = []
    consumer = FakeConsumer(batches, log)
    marks = FakeMarks()
    worker = TransactionWorker(
        consumer,
        FakeProducer(log),
        TOPICS,
        make_detector(state, threshold),
        marks,
        options=WorkerOptions(poll_timeout_ms=5, backoff=Backoff(initial_s=0.001, maximum_s=0.005)),
    )
    return worker, consumer, log, marks


def commits(log: list[Any]) -> list[dict[TopicPartition, int]]:
    return [entry[1] for entry in log if entry[0] == "commit"]


@pytest.mark.anyio
async def test_batches_are_scored_in_order_and_committed_after_their_records() -> None:
    batches = make_batches(count=12, size=40)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state)
    await run_until_drained(worker, consumer, asyncio.Event())

    assert state.observed == [[tx.transaction_id for tx in batch] for batch in batches]
    reference = make_detector(InMemoryFeatureState(WindowSpec()))
    expected = [
        scored.document() for batch in batches for scored in reference.score_many(copy.copy(batch))
    ]
    sent_scores = [entry[2] for entry in log if entry[0] == "send" and entry[1] == TOPICS.scores]
    assert sent_scores == expected
    # Each commit follows every score of its batches and covers exactly the batches before it.
    covered = iter(itertools.accumulate(commit_groups(log, batches)))
    for index, entry in enumerate(log):
        if entry[0] == "commit":
            done = next(covered)
            scores_before = sum(1 for e in log[:index] if e[0] == "send" and e[1] == TOPICS.scores)
            assert scores_before == sum(len(batch) for batch in batches[:done])
    assert sum(commit_groups(log, batches)) == len(batches)
    final: dict[TopicPartition, int] = {}
    for offsets in commits(log):
        for partition, offset in offsets.items():
            assert offset > final.get(partition, 0), "offsets go forward only"
            final[partition] = offset
    assert sum(final.values()) == sum(len(batch) for batch in batches)
    assert worker.stats.scored == sum(len(batch) for batch in batches)


@pytest.mark.anyio
async def test_no_batch_is_observed_before_a_failed_one_is_redone() -> None:
    batches = make_batches(count=6, size=30)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state)
    original = state.observe
    calls = 0

    def fail_third(transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        nonlocal calls
        calls += 1
        if calls == 3:
            state.fail = 2  # the third batch fails twice, then succeeds
        return original(transactions)

    # Batches are recorded on the state lane, ahead of their scoring: fail the third there.
    state.observe = fail_third  # type: ignore[method-assign]
    await run_until_drained(worker, consumer, asyncio.Event())

    succeeded = [ids for ids in state.observed if ids[0] != "failed"]
    assert succeeded == [[tx.transaction_id for tx in batch] for batch in batches]
    failed = [ids[1:] for ids in state.observed if ids[0] == "failed"]
    assert failed == [[tx.transaction_id for tx in batches[2]]] * 2
    assert sum(commit_groups(log, batches)) == len(batches)
    assert worker.stats.retries == 2
    assert worker.stats.healthy


class BufferedBook(MemoryCooldownBook):
    """A cooldown book in memory that follows the remote stores' protocol
    (`pipelines.state.buffering.BufferedStore`): its writes are made at once all the same."""

    def prefetch(self, card_ids: Iterable[str]) -> None:
        """Nothing to load."""

    def flushing(self) -> Callable[[], None]:
        return lambda: None

    def discard(self) -> None:
        """Nothing to drop."""


class LoggingBook(BufferedBook):
    """A cooldown book read like a remote one: each batch's cards are loaded in one go."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__(cooldown_seconds=3_600)
        self.log = log

    def prefetch(self, card_ids: Iterable[str]) -> None:
        self.log.append(("cooldowns read", next(iter(card_ids))))


@pytest.mark.anyio
async def test_a_batch_is_recorded_once_the_batch_ahead_has_read_its_cooldowns() -> None:
    """Redis runs one command at a time: the state script of the batch behind, run any
    earlier, would hold up the reads of the batch ahead."""
    batches = make_batches(count=10, size=30)
    log: list[tuple[str, str]] = []
    state = RecordingState(WindowSpec())
    worker, consumer, _, _ = make_worker(batches, state)
    alerting = AlertPolicy(AlertPolicyConfig(threshold=0.5), LoggingBook(log))
    worker.detector = FraudDetector(
        FeatureSet(FeatureSpec()), state, OnlineLearner("logistic"), alerting=alerting
    )
    original = state.observe

    def logged(transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        log.append(("recorded", transactions[0].card_id))
        return original(transactions)

    state.observe = logged  # type: ignore[method-assign]
    await run_until_drained(worker, consumer, asyncio.Event())

    # Both lanes go in batch order: the n-th of each kind of step is batch n's.
    recorded = [at for at, (step, _) in enumerate(log) if step == "recorded"]
    read = [at for at, (step, _) in enumerate(log) if step == "cooldowns read"]
    assert len(recorded) == len(read) == len(batches)
    assert [card for step, card in log if step == "recorded"] == [b[0].card_id for b in batches]
    for turn in range(1, len(batches)):
        assert recorded[turn] > read[turn - 1], f"batch {turn} recorded too early"


class FlakyBook(BufferedBook):
    """A cooldown book read like a remote one, whose reads fail on the given calls: a batch's
    scoring fails after it was recorded in state."""

    def __init__(self, failing_calls: set[int]) -> None:
        super().__init__(cooldown_seconds=3_600)
        self.failing_calls = failing_calls
        self.calls = 0

    def prefetch(self, card_ids: Iterable[str]) -> None:
        self.calls += 1
        if self.calls in self.failing_calls:
            raise redis.ConnectionError("Redis went away")


class FlakyWritesBook(BufferedBook):
    """A cooldown book written like a remote one, whose writes fail on the given calls; each
    write made is logged with the first card of its batch."""

    def __init__(self, log: list[Any], failing_calls: set[int]) -> None:
        super().__init__(cooldown_seconds=3_600)
        self.log = log
        self.failing_calls = failing_calls
        self.calls = 0
        self.batch_cards: list[str] = []

    def prefetch(self, card_ids: Iterable[str]) -> None:
        self.batch_cards.append(next(iter(card_ids)))

    def flushing(self) -> Callable[[], None]:
        card = self.batch_cards[-1]

        def write() -> None:
            self.calls += 1
            if self.calls in self.failing_calls:
                raise redis.ConnectionError("Redis went away")
            self.log.append(("written", card))

        return write


class FlakyMarks(FakeMarks):
    """Alert marks whose ``mark`` fails on the given calls."""

    def __init__(self, failing_calls: set[int]) -> None:
        super().__init__()
        self.failing_calls = failing_calls
        self.calls = 0

    def mark(self, transaction_ids: Any) -> None:
        self.calls += 1
        if self.calls in self.failing_calls:
            raise redis.ConnectionError("Redis went away")
        super().mark(transaction_ids)


def expected_scores(batches: list[list[Transaction]], threshold: float) -> list[dict[str, Any]]:
    """What one uninterrupted in-memory run sends to the scores topic."""
    reference = make_detector(InMemoryFeatureState(WindowSpec()), threshold=threshold)
    return [
        scored.document() for batch in batches for scored in reference.score_many(copy.copy(batch))
    ]


def sent_scores(log: list[Any]) -> list[Any]:
    return [entry[2] for entry in log if entry[0] == "send" and entry[1] == TOPICS.scores]


@pytest.mark.anyio
async def test_a_batch_whose_scoring_fails_after_it_was_recorded_scores_as_first_time() -> None:
    """Recorded in state, then failing before delivery: scored again from its first answers."""
    batches = make_batches(count=8, size=40)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state, threshold=0.2)
    alerting = AlertPolicy(AlertPolicyConfig(threshold=0.2), FlakyBook(failing_calls={3}))
    worker.detector = FraudDetector(
        FeatureSet(FeatureSpec()), state, OnlineLearner("logistic"), alerting=alerting
    )
    await run_until_drained(worker, consumer, asyncio.Event())

    expected = expected_scores(batches, threshold=0.2)
    assert sent_scores(log) == expected
    assert any(score["decision"] == "alert" for score in expected)
    # Recorded in turn, then once more (as seen) for the retry; so are the batches behind it
    # that were recorded ahead and found their scoring turn taken.
    third = [tx.transaction_id for tx in batches[2]]
    assert state.observed.count(third) == 2
    first_recordings = list(dict.fromkeys(tuple(ids) for ids in state.observed))
    assert first_recordings == [tuple(tx.transaction_id for tx in batch) for batch in batches]
    assert sum(commit_groups(log, batches)) == len(batches)
    assert worker.stats.retries == 1


@pytest.mark.anyio
async def test_a_failed_mark_is_retried_alone_and_holds_back_the_commits_behind_it() -> None:
    """A batch's records are not sent again when marking its alerts fails, and no batch is
    committed before the one ahead of it."""
    batches = make_batches(count=8, size=40)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state, threshold=0.2)
    marks = FlakyMarks(failing_calls={1})  # the first batch with an alert
    worker.delivered = marks
    await run_until_drained(worker, consumer, asyncio.Event())

    assert sent_scores(log) == expected_scores(batches, threshold=0.2)
    assert state.observed == [[tx.transaction_id for tx in batch] for batch in batches]
    assert worker.stats.retries == 1
    alerts = [entry[2] for entry in log if entry[0] == "send" and entry[1] == TOPICS.alerts]
    ids = [alert["transaction"]["transaction_id"] for alert in alerts]
    assert ids
    assert len(ids) == len(set(ids)) == worker.stats.alerts
    assert marks.delivered == set(ids)
    assert sum(commit_groups(log, batches)) == len(batches)


@pytest.mark.anyio
async def test_a_failed_write_is_made_again_in_turn_before_its_batch_is_sent() -> None:
    """The stores' writes of a batch's scoring run on their own lane while the next batch is
    scored: one that fails is made again, alone, and no batch is sent before its writes are
    made, nor written before the batch ahead."""
    batches = make_batches(count=8, size=40)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state, threshold=0.2)
    book = FlakyWritesBook(log, failing_calls={3})
    alerting = AlertPolicy(AlertPolicyConfig(threshold=0.2), book)
    worker.detector = FraudDetector(
        FeatureSet(FeatureSpec()), state, OnlineLearner("logistic"), alerting=alerting
    )
    await run_until_drained(worker, consumer, asyncio.Event())

    assert sent_scores(log) == expected_scores(batches, threshold=0.2)
    # Only the write is made again: nothing is recorded or scored twice.
    assert state.observed == [[tx.transaction_id for tx in batch] for batch in batches]
    assert [card for step, card, *_ in log if step == "written"] == [b[0].card_id for b in batches]
    assert worker.stats.retries == 1
    # Each batch's scores go out after its writes, and after the batches ahead of its group
    # are committed; its group's commit comes next.
    covered = [0, *itertools.accumulate(commit_groups(log, batches))]
    assert covered[-1] == len(batches)
    scores = [entry for entry in log if entry[0] in ("written", "send", "commit")]
    first_of_batch = {batch[0].transaction_id: turn for turn, batch in enumerate(batches)}
    written = commits_seen = 0
    for entry in scores:
        if entry[0] == "written":
            written += 1
        elif entry[0] == "commit":
            commits_seen += 1
        elif entry[1] == TOPICS.scores and entry[2]["transaction_id"] in first_of_batch:
            turn = first_of_batch[entry[2]["transaction_id"]]
            assert written > turn, f"batch {turn} sent before its writes"
            assert covered[commits_seen] <= turn < covered[commits_seen + 1]


class SlowProducer(FakeProducer):
    """A producer whose broker takes a while to acknowledge each record."""

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        await super().send(topic, *args, **kwargs)
        acknowledged: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.02, acknowledged.set_result, None)
        return acknowledged


@pytest.mark.anyio
async def test_batches_ready_behind_a_delivery_are_delivered_with_the_next_one() -> None:
    """Batches scored and written while the one ahead waits for the broker go out together:
    one send and one commit for them all, in batch order."""
    batches = make_batches(count=12, size=5)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state, threshold=0.2)
    worker.producer = SlowProducer(log)
    await run_until_drained(worker, consumer, asyncio.Event())

    assert sent_scores(log) == expected_scores(batches, threshold=0.2)
    groups = commit_groups(log, batches)
    assert sum(groups) == len(batches)
    assert max(groups) > 1
    assert len(groups) < len(batches)
    assert worker.stats.batches == len(batches)
    assert worker.stats.scored == sum(len(batch) for batch in batches)


def commit_groups(log: list[Any], batches: list[list[Transaction]]) -> list[int]:
    """How many batches each commit covered, checking that each covers exactly the run of
    batches after those committed before it: past their last record in each partition."""
    expected = expected_commits(batches)
    sizes: list[int] = []
    at = 0
    for commit in commits(log):
        merged: dict[TopicPartition, int] = {}
        size = 0
        while merged != commit:
            assert at + size < len(expected), f"{commit} covers no run of batches from {at}"
            merged.update(expected[at + size])
            size += 1
        sizes.append(size)
        at += size
    return sizes


def expected_commits(batches: list[list[Transaction]]) -> list[dict[TopicPartition, int]]:
    """Each batch's commit, in order: past its last record in each partition it read."""
    offsets = [0] * PARTITIONS
    expected = []
    for batch in batches:
        moved: dict[TopicPartition, int] = {}
        for tx in batch:
            partition = partition_of(tx.card_id)
            offsets[partition] += 1
            moved[TopicPartition(TOPICS.transactions, partition)] = offsets[partition]
        expected.append(moved)
    return expected


@pytest.mark.anyio
async def test_stopping_finishes_and_commits_every_batch_fetched() -> None:
    batches = make_batches(count=20, size=25)
    state = RecordingState(WindowSpec())
    worker, consumer, log, _ = make_worker(batches, state)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    while consumer.handed < 5:
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert consumer.handed < len(batches)
    assert sum(commit_groups(log, batches)) == consumer.handed
    assert len(state.observed) == consumer.handed


@pytest.mark.anyio
async def test_a_repeat_in_the_next_batch_does_not_send_its_alert_again() -> None:
    first = [make_tx(i, hours=i / 60, card=f"c{i}", amount=5_000.0) for i in range(20)]
    batches = [first, [*first[:5], make_tx(99, card="c99")], first[5:10]]
    state = RecordingState(WindowSpec())
    worker, consumer, log, marks = make_worker(batches, state, threshold=0.0)
    await run_until_drained(worker, consumer, asyncio.Event())

    alerts = [e[2]["transaction"]["transaction_id"] for e in log if e[1:2] == (TOPICS.alerts,)]
    assert sorted(alerts) == sorted([tx.transaction_id for tx in first] + ["t99"])
    assert marks.delivered == set(alerts)
    scores = [e[2]["transaction_id"] for e in log if e[1:2] == (TOPICS.scores,)]
    assert len(scores) == 31  # repeats are scored again: the first answer, re-emitted


class FoundAlerts:
    """The alerts topic read back, holding the given transaction ids."""

    def __init__(self, held: set[str]) -> None:
        self.held = held
        self.asked: list[list[str]] = []

    async def sent(self, alerts: Iterable[tuple[str, str]]) -> set[str]:
        ids = [transaction_id for transaction_id, _ in alerts]
        self.asked.append(ids)
        return self.held & set(ids)


@pytest.mark.anyio
async def test_a_replay_does_not_resend_unmarked_alerts_found_in_the_alerts_topic() -> None:
    """A worker died after the broker took its alerts and before it marked them: the next
    owner replays the batch, finds them in the topic, marks them, and sends the others."""
    batch = [make_tx(i, hours=i / 60, card=f"c{i}", amount=5_000.0) for i in range(10)]
    state = RecordingState(WindowSpec())
    first, consumer, log, marks = make_worker([batch], state, threshold=0.0)
    await run_until_drained(first, consumer, asyncio.Event())
    ids = [tx.transaction_id for tx in batch]
    assert marks.delivered == set(ids)

    # The crash: the marks never reached Redis. The next owner shares state and stores.
    replay, consumer, log, _ = make_worker([batch], state, threshold=0.0)
    replay.detector = first.detector
    replay.delivered = marks
    marks.delivered.clear()
    topic = FoundAlerts(set(ids[:7]))
    replay.alerts_topic = topic
    await run_until_drained(replay, consumer, asyncio.Event())

    resent = [e[2]["transaction"]["transaction_id"] for e in log if e[1:2] == (TOPICS.alerts,)]
    assert sorted(resent) == ids[7:]
    assert [sorted(asked) for asked in topic.asked] == [sorted(ids)]
    assert marks.delivered == set(ids)
