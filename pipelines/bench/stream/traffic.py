"""The bench's side of the topics: transactions sent at a steady rate, scores read back.

`fraudstream bench stream` times the workers from the outside: each transaction's send time is
kept by its id, and a plain consumer of every partition of the scores topic notes when its
score first arrives, on the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from pipelines.bench.local_servers import LocalProcess, LocalServerError
from pipelines.stream.kafka_clients import (
    KafkaSettings,
    OutgoingRecord,
    make_consumer,
    start_with_retry,
)

STALL_SECONDS = 60.0
"""While scores are awaited, none new for this long ends the run with an error."""


class StreamBenchError(LocalServerError):
    """A worker exited, scores stopped coming, or a server could not be reached."""


class CommitWatcher:
    """How far the workers' consumer group has committed the transactions topic.

    A worker commits a batch's offsets once the broker has acknowledged its scores, so the
    sum over the partitions counts transactions scored and delivered. The bench times the
    backlog by it: one small request every few hundredths of a second, where reading every
    score record took about a tenth of a core (8 µs a score) from the two cores the worker,
    Redis and the broker being measured share.
    """

    def __init__(self, kafka: KafkaSettings, group: str, topic: str, partitions: int) -> None:
        # Assigned, never subscribed: it asks the group's coordinator for offsets and never
        # joins the group, so the workers' partitions stay theirs.
        self._consumer = make_consumer(kafka, group_id=group)
        self._kafka = kafka
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[CommitWatcher]:
        await start_with_retry(self._consumer, self._kafka, "commit watcher")
        try:
            self._consumer.assign(self._partitions)
            yield self
        finally:
            await self._consumer.stop()

    async def reached(self, at_least: int, workers: Sequence[LocalProcess]) -> tuple[float, int]:
        """Wait until ``at_least`` transactions are committed: when that was first seen (to
        within `WATCH_INTERVAL_SECONDS` and a request), and how many were committed then."""
        progress_at, seen = time.monotonic(), 0
        while True:
            # One OffsetFetch for every partition: `committed()` sends one a partition, and
            # a dozen requests a read cost the broker and this process as much as reading
            # the scores did.
            offsets = await self._consumer._coordinator.fetch_committed_offsets(self._partitions)
            now = time.perf_counter()
            committed = sum(max(0, offset.offset) for offset in offsets.values())
            if committed >= at_least:
                return now, committed
            _check(workers)
            if committed > seen:
                progress_at, seen = time.monotonic(), committed
            elif time.monotonic() - progress_at > STALL_SECONDS:
                raise _stalled("transaction committed", seen, at_least)
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)


WATCH_INTERVAL_SECONDS = 0.02
"""Pause between two `CommitWatcher` reads: the backlog's window is timed to within a few
hundredths of a second, against runs of seconds."""


class ScoreReader:
    """Reads every partition of the scores topic, keeping each transaction id's first arrival.

    It starts reading at its first `until`: the bench times a backlog by the workers' commits
    (`CommitWatcher`) and reads its scores afterwards, outside the timed window.
    """

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
        self._reading: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[ScoreReader]:
        await start_with_retry(self._consumer, self._kafka, "score reader")
        try:
            try:
                yield self
            finally:
                if self._reading is not None:
                    self._reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._reading
        finally:
            await self._consumer.stop()

    async def until(self, count: int, workers: Sequence[LocalProcess]) -> None:
        """Wait until ``count`` transactions have a score; fail if a worker exits or scores
        stop coming."""
        if self._reading is None:
            # Assigned only now: an assigned consumer fetches ahead, even before it is read.
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning()
            self._reading = asyncio.create_task(self._read())
        progress_at, seen = time.monotonic(), len(self.arrived)
        while len(self.arrived) < count:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), 0.5)
            _check(workers)
            if len(self.arrived) > seen:
                progress_at, seen = time.monotonic(), len(self.arrived)
            elif time.monotonic() - progress_at > STALL_SECONDS:
                raise _stalled("score", seen, count)

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


def _check(workers: Sequence[LocalProcess]) -> None:
    for worker in workers:
        worker.check()


def _stalled(what: str, seen: int, count: int) -> StreamBenchError:
    return StreamBenchError(f"no new {what} for {STALL_SECONDS:g} s: {seen:,} of {count:,}")


async def send_paced(
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
