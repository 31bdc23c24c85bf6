"""Kafka clients for distributed mode: their settings, how they start, and batched delivery.

Delivery is at least once and rests on ordering alone, not on the idempotent or transactional
producer (the test broker, Tansu, has neither): a consumer produces everything a batch leads
to, waits for every acknowledgement (`send_batch_and_wait`), and only then commits the batch's
offsets. A crash in between replays the batch, so whatever reads our topics must tolerate a
record twice.

The clients are created inside the running event loop (aiokafka binds them to it), by the
process's composition root, never at import.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, TypeVar

# aiokafka ships no type information; the ignores stay quiet if stubs appear one day.
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped,unused-ignore]
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import (  # type: ignore[import-untyped,unused-ignore]
    DefaultPartitioner,
    murmur2,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from pipelines.options import require_positive
from pipelines.retrying import Backoff

logger = logging.getLogger(__name__)


class BrokerUnavailableError(ConnectionError):
    """No broker answered at the bootstrap address within the bounded attempts."""


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic for a reason other than its existing already."""


@dataclass(frozen=True)
class KafkaSettings:
    """How the processes of distributed mode talk to Kafka.

    Examples
    --------
    >>> settings = KafkaSettings("127.0.0.1:9092")
    >>> settings.fetch_max_wait_ms, settings.connect_backoff.delays()[:3]
    (10, (0.1, 0.2, 0.4))
    >>> KafkaSettings("127.0.0.1:9092", session_timeout_ms=1_000, heartbeat_interval_ms=1_000)
    Traceback (most recent call last):
    ...
    ValueError: heartbeat_interval_ms must be below session_timeout_ms
    """

    bootstrap: str
    """``host:port``, or several separated by commas."""
    client_id: str = "fraudstream"
    fetch_max_wait_ms: int = 10
    """How long the broker may hold a fetch that has too little data. Tansu holds it that long
    even when records arrive meanwhile, so this bounds the consumer's latency: keep it small."""
    max_poll_records: int = 1_000
    linger_ms: int = 5
    max_batch_size: int = 512 * 1024
    request_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000
    """A consumer silent this long leaves its group. With Tansu it also sets how long a
    consumer takes to start: the broker holds a join for about half of it. And a consumer
    stopped in its group's first generation does not leave the group (aiokafka leaves only
    from generation 1; Tansu counts from 0), so the next one to join waits this long more."""
    heartbeat_interval_ms: int = 3_000
    connect_attempts: int = 8
    connect_backoff_ms: int = 100
    connect_backoff_max_ms: int = 5_000

    def __post_init__(self) -> None:
        require_positive(
            self,
            "fetch_max_wait_ms",
            "max_poll_records",
            "max_batch_size",
            "request_timeout_ms",
            "session_timeout_ms",
            "heartbeat_interval_ms",
        )
        if self.linger_ms < 0:
            raise ValueError(f"linger_ms must not be negative, not {self.linger_ms}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        self.connect_backoff  # noqa: B018 (validates the bounds now rather than at start-up)

    @property
    def connect_backoff(self) -> Backoff:
        return Backoff(
            attempts=self.connect_attempts,
            initial_s=self.connect_backoff_ms / 1_000,
            maximum_s=self.connect_backoff_max_ms / 1_000,
        )


class OutgoingRecord(NamedTuple):
    """One record to produce; headers are ``(name, UTF-8 bytes)`` pairs."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class Consumer(Protocol):
    """What the worker and the learner need of a consumer (aiokafka's `AIOKafkaConsumer`)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as of the last fetch (aiokafka keeps it)."""
        ...


class Startable(Protocol):
    async def start(self) -> None: ...


class RecordSender(Protocol):
    """What `send_batch_and_wait` needs of a producer (aiokafka's `AIOKafkaProducer`)."""

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]: ...


Client = TypeVar("Client", bound=Startable)


def make_consumer(
    settings: KafkaSettings, *topics: str, group_id: str | None, from_start: bool = True
) -> Any:
    """An unstarted `AIOKafkaConsumer` of ``topics`` in ``group_id``; keys and values stay bytes.

    Offsets are committed by the caller only, after a batch's output is acknowledged; a group
    with no committed offset starts at the beginning, so nothing produced before the first
    consumer started is skipped. A live feed outside any group (``group_id=None``,
    ``from_start=False``) starts at the end instead.
    """
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_start else "latest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=settings.max_poll_records,
        request_timeout_ms=settings.request_timeout_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )


def make_producer(settings: KafkaSettings) -> Any:
    """An unstarted `AIOKafkaProducer`: every replica acknowledges; no idempotence.

    Idempotence and transactions are left off on purpose: correctness comes from committing
    after delivery (see the module's docstring), so it holds on brokers without them.
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        request_timeout_ms=settings.request_timeout_ms,
    )


async def start_with_retry(client: Client, settings: KafkaSettings, what: str) -> Client:
    """Start ``client`` (a consumer, producer or admin client), retrying while no broker answers.

    The waits grow exponentially up to a bound, so a broker that is down makes the process
    neither spin nor hang; after the last attempt `BrokerUnavailableError` names the address.
    Errors a retry cannot fix (an unsupported version, a refused authentication) are raised
    at once.
    """
    backoff = settings.connect_backoff
    delays = backoff.delays()
    for attempt in range(len(delays) + 1):
        try:
            await client.start()
        except KafkaError as error:
            if not error.retriable:
                raise
            if attempt == len(delays):
                raise BrokerUnavailableError(
                    f"the Kafka {what} could not reach {settings.bootstrap} in "
                    f"{len(delays) + 1} attempts over {sum(delays):.1f} s: {error}"
                ) from error
            logger.warning(
                "the Kafka %s could not reach %s (attempt %d of %d), retrying in %.1f s: %s",
                *(what, settings.bootstrap, attempt + 1, len(delays) + 1, delays[attempt], error),
            )
            await asyncio.sleep(delays[attempt])
        else:
            return client
    raise AssertionError("unreachable: the last attempt returns or raises")


async def ensure_topics(
    settings: KafkaSettings,
    topics: Sequence[str],
    partitions: int,
    *,
    replication_factor: int = 1,
) -> None:
    """Create those of ``topics`` that do not exist yet, with ``partitions`` partitions each.

    Topics that exist are left as they are, whatever their partition count; two processes
    that ensure the same topics at once both succeed.
    """
    if not topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await start_with_retry(admin, settings, "admin client")
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in topics]
        )
    finally:
        await admin.close()
    refused = [
        f"{entry[0]}: {for_code(entry[1]).__name__}" + (f" ({entry[2]})" if entry[2:] else "")
        for entry in response.topic_errors
        if entry[1] not in (0, TopicAlreadyExistsError.errno)
    ]
    if refused:
        raise TopicCreationError(f"{settings.bootstrap} refused to create " + "; ".join(refused))


async def fetch_metadata(producer: Any, topics: Sequence[str]) -> None:
    """Load the partitions of ``topics`` now, so the first batch does not wait for them."""
    for topic in topics:
        await producer.partitions_for(topic)


async def send_batch_and_wait(producer: RecordSender, records: Sequence[OutgoingRecord]) -> None:
    """Send every record, then wait once for all of their acknowledgements.

    Waiting after each send would cost a round trip per record; waiting once lets the producer
    fill its batches. When this returns, every record is stored by the broker and the caller
    may commit the offsets that led to them; when it raises, some may not be, and the caller
    must not commit.

    An `AIOKafkaProducer` is handed whole batches, one per partition (`create_batch`,
    `send_batch`): a few microseconds a record instead of `send`'s twenty. Records go to the
    partition `send` would have chosen, so a key's records stay together and in order.
    """
    if isinstance(producer, AIOKafkaProducer):
        deliveries = await _send_in_batches(producer, records)
    else:
        deliveries = [
            await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            for record in records
        ]
    outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        failures[0].add_note(f"{len(failures)} of {len(records)} records were not delivered")
        raise failures[0]


_choose_partition = DefaultPartitioner()


@lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    # murmur2 is pure Python, about as slow as the rest of a send; keys (cards) repeat.
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | None, partitions: Sequence[int]) -> int:
    """The partition aiokafka's default partitioner gives ``key`` (any one for no key).

    >>> partition_for(b"c1", [0, 1, 2]) == DefaultPartitioner()(b"c1", [0, 1, 2], [0, 1, 2])
    True
    """
    if key is None:
        return int(_choose_partition(None, list(partitions), list(partitions)))
    return partitions[_key_hash(key) % len(partitions)]


async def _send_in_batches(producer: Any, records: Sequence[OutgoingRecord]) -> list[Any]:
    partitions: dict[str, list[int]] = {}
    open_batches: dict[tuple[str, int], Any] = {}
    deliveries: list[Any] = []
    for record in records:
        topic = record.topic
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        destination = (topic, partition_for(record.key, partitions[topic]))
        batch = open_batches.get(destination)
        if batch is None:
            batch = open_batches[destination] = producer.create_batch()
        appended = batch.append(
            key=record.key, value=record.value, timestamp=None, headers=record.headers
        )
        if appended is None:  # full: send it and start the partition's next one
            batch.close()
            deliveries.append(await producer.send_batch(batch, topic, partition=destination[1]))
            batch = open_batches[destination] = producer.create_batch()
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                is None
            ):
                # Larger than a whole batch: `send` sizes a batch for it (up to the
                # producer's max_request_size), to the same partition.
                deliveries.append(
                    await producer.send(
                        topic,
                        record.value,
                        key=record.key,
                        headers=record.headers,
                        partition=destination[1],
                    )
                )
    for (topic, partition), batch in open_batches.items():
        batch.close()
        deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries
