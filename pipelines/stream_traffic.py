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

from pipelines.kafka_clients import KafkaSettings, OutgoingRecord, start_with_retry
from pipelines.local_servers import LocalProcess, LocalServerError

STALL_SECONDS = 60.0
"""While scores are awaited, none new for this long ends the run with an error."""


class StreamBenchError(LocalServerError):
    """A worker exited, scores stopped coming, or a server could not be reached."""


class ScoreReader:
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
    async def reading(self) -> AsyncIterator[ScoreReader]:
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
