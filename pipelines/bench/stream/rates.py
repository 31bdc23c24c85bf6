"""The in-process rates that `fraudstream bench stream` sets the end-to-end rate against.

The reference is the worker's own batch path (`pipelines.stream.scoring_batch.process_records`):
transaction records as bytes in, score and alert records as bytes out, over in-memory state
and alert marks. What the end-to-end rate loses against it is what Kafka and Redis cost. The
same path over Redis state and marks shows Redis's share alone; the detector alone, over
parsed transactions and in-memory state (what this bench measured first), is kept beside
them, so the records' decoding and encoding can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from models.detector import FraudDetector
from models.schemas import Transaction
from pipelines.bench.local_servers import Cores, CpuClock
from pipelines.stream.kafka_clients import OutgoingRecord, partition_for
from pipelines.stream.scoring_batch import AlertMarks, process_records
from pipelines.stream.topics import Topics


@dataclass(frozen=True)
class Rate:
    transactions: int
    seconds: float
    cores: Cores

    @property
    def transactions_per_second(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else float("nan")

    def cpu_us(self, cores: float | None) -> float | None:
        """CPU per transaction of a process that used ``cores`` over this window."""
        if cores is None or self.transactions == 0:
            return None  # a backlog small enough to arrive in one poll leaves nothing timed
        return cores * self.seconds / self.transactions * 1e6


class ConsumedRecord(NamedTuple):
    """A produced record as a consumer reads it back (the fields of `Record`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def consumed_records(records: Sequence[OutgoingRecord], partitions: int) -> list[ConsumedRecord]:
    """``records`` as a consumer would read them: each on its key's partition, numbered there.

    >>> [one, two] = consumed_records([OutgoingRecord("t", b"c1", b"{}")] * 2, partitions=3)
    >>> one.partition == two.partition, one.offset, two.offset
    (True, 0, 1)
    """
    numbers = list(range(partitions))
    offsets = [0] * partitions
    consumed = []
    for record in records:
        partition = partition_for(record.key, numbers)
        consumed.append(
            ConsumedRecord(record.topic, partition, offsets[partition], record.key, record.value)
        )
        offsets[partition] += 1
    return consumed


def worker_path_rate(
    detector: FraudDetector,
    marks: AlertMarks,
    topics: Topics,
    records: Sequence[ConsumedRecord],
    batch: int,
    clock: CpuClock,
    max_record_bytes: int,
) -> Rate:
    """The worker's batch path over ``records``, ``batch`` at a time, as one worker takes them."""
    before = clock.read()
    for start in range(0, len(records), batch):
        process_records(
            records[start : start + batch],
            detector,
            marks,
            topics,
            max_record_bytes=max_record_bytes,
            raised_at=datetime.now(UTC),
        )
    after = clock.read()
    return Rate(len(records), after[0] - before[0], clock.cores(before, after))


def detector_rate(
    detector: FraudDetector, stream: Sequence[Transaction], batch: int, clock: CpuClock
) -> Rate:
    """The detector alone over parsed transactions: no records read or written."""
    before = clock.read()
    for start in range(0, len(stream), batch):
        detector.score_many(stream[start : start + batch])
    after = clock.read()
    return Rate(len(stream), after[0] - before[0], clock.cores(before, after))
