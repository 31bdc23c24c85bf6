"""The Kafka plumbing against a real Tansu broker: topics, delivery, commits, groups, start-up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from pipelines.bench.server_process import free_port
from pipelines.stream.dead_letters import dead_letter_headers, read_dead_letter_headers
from pipelines.stream.kafka_clients import (
    BrokerUnavailableError,
    KafkaSettings,
    OutgoingRecord,
    ensure_topics,
    fetch_metadata,
    make_consumer,
    make_producer,
    send_batch_and_wait,
    start_with_retry,
)
from pipelines.stream.topics import Topics
from tests.servers.kafka_broker import KafkaBroker

pytestmark = pytest.mark.anyio

PARTITIONS = 4
WAIT_SECONDS = 20.0
"""How long a test waits for records it expects: generous, only a broken broker reaches it."""


@contextlib.asynccontextmanager
async def running(client: Any, settings: KafkaSettings, what: str) -> AsyncIterator[Any]:
    """A consumer or producer, started (with retries) and stopped at exit."""
    try:
        yield await start_with_retry(client, settings, what)
    finally:
        await client.stop()


async def consume(consumer: Any, count: int) -> list[Any]:
    """At least ``count`` records, fetched as the workers do, in batches."""
    records: list[Any] = []
    async with asyncio.timeout(WAIT_SECONDS):
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                records.extend(part)
    return records


async def nothing_more(consumer: Any) -> list[Any]:
    """Whatever else arrives within half a second: nothing, when all was read."""
    batch = await consumer.getmany(timeout_ms=500)
    return [record for part in batch.values() for record in part]


def keyed(topic: str, numbers: range, *, cards: int = 50) -> list[OutgoingRecord]:
    """Records numbered in their value, keyed by card as transactions are."""
    return [
        OutgoingRecord(topic, f"card-{number % cards}".encode(), str(number).encode())
        for number in numbers
    ]


def numbers(records: Sequence[Any]) -> list[int]:
    return [int(record.value) for record in records]


def next_offsets(records: Sequence[Any]) -> dict[Any, int]:
    """One past the last record of each partition: what a worker commits after a batch."""
    offsets: dict[Any, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets


async def produce(settings: KafkaSettings, records: Sequence[OutgoingRecord]) -> None:
    async with running(make_producer(settings), settings, "producer") as producer:
        await fetch_metadata(producer, sorted({record.topic for record in records}))
        await send_batch_and_wait(producer, records)


async def test_ensure_topics_creates_the_missing_ones_once(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap)
    await admin.start()
    try:
        assert not set(topics.names()) & set(await admin.list_topics())
        await ensure_topics(kafka_settings, topics.names(), 3)
        # A second call, even asking for another partition count, leaves them as they are.
        await ensure_topics(kafka_settings, topics.names(), 5)
        described = await admin.describe_topics(list(topics.names()))
    finally:
        await admin.close()
    partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
    assert partitions == dict.fromkeys(topics.names(), 3)


async def test_all_is_consumed_once_committed_and_not_read_again_after_a_restart(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    await ensure_topics(kafka_settings, [topics.transactions], PARTITIONS)
    await produce(kafka_settings, keyed(topics.transactions, range(2_000)))
    group = f"{topics.transactions}-workers"

    consumer = make_consumer(kafka_settings, topics.transactions, group_id=group)
    async with running(consumer, kafka_settings, "consumer"):
        records = await consume(consumer, 2_000)
        await consumer.commit()
    assert sorted(numbers(records)) == list(range(2_000))
    partitions_of_card: dict[bytes, set[int]] = defaultdict(set)
    order_of_card: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        partitions_of_card[record.key].add(record.partition)
        order_of_card[record.key].append(int(record.value))
    assert {record.partition for record in records} == set(range(PARTITIONS))
    # One card, one partition: its transactions are read in the order they were produced.
    assert all(len(found) == 1 for found in partitions_of_card.values())
    assert all(order == sorted(order) for order in order_of_card.values())

    await produce(kafka_settings, keyed(topics.transactions, range(2_000, 2_100)))
    restarted = make_consumer(kafka_settings, topics.transactions, group_id=group)
    async with running(restarted, kafka_settings, "consumer"):
        after_restart = await consume(restarted, 100)
        after_restart += await nothing_more(restarted)
    assert sorted(numbers(after_restart)) == list(range(2_000, 2_100))


async def test_what_was_not_committed_is_delivered_again(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    await ensure_topics(kafka_settings, [topics.transactions], PARTITIONS)
    await produce(kafka_settings, keyed(topics.transactions, range(400)))
    group = f"{topics.transactions}-workers"

    crashed = make_consumer(kafka_settings, topics.transactions, group_id=group)
    async with running(crashed, kafka_settings, "consumer"):
        first = await consume(crashed, 400)  # and stops before committing anything
    again = make_consumer(kafka_settings, topics.transactions, group_id=group)
    async with running(again, kafka_settings, "consumer"):
        second = await consume(again, 400)
        assert sorted(numbers(second)) == sorted(numbers(first)) == list(range(400))
        # Commit only the first half of each partition, as after a batch that was done.
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for record in second:
            by_partition[record.partition].append(record)
        done = [record for part in by_partition.values() for record in part[: len(part) // 2]]
        await again.commit(next_offsets(done))
    last = make_consumer(kafka_settings, topics.transactions, group_id=group)
    async with running(last, kafka_settings, "consumer"):
        third = await consume(last, 400 - len(done))
        third += await nothing_more(last)
    assert sorted(numbers(third)) == sorted(set(range(400)) - set(numbers(done)))


async def test_dead_letters_keep_key_value_and_headers_through_the_broker(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    await ensure_topics(kafka_settings, [topics.dlq], 1)
    raw = b'{"amount": -1, \xff not even utf-8'
    headers = dead_letter_headers("not JSON: invalid utf-8", topics.transactions, 3, 41)
    await produce(
        kafka_settings,
        [
            OutgoingRecord(topics.dlq, b"card-7", raw, headers),
            OutgoingRecord(topics.dlq, None, b"plain", None),
        ],
    )
    consumer = make_consumer(kafka_settings, topics.dlq, group_id=f"{topics.dlq}-tools")
    async with running(consumer, kafka_settings, "consumer"):
        letter, plain = sorted(await consume(consumer, 2), key=lambda record: record.offset)
    assert (letter.key, letter.value) == (b"card-7", raw)
    info = read_dead_letter_headers(letter.headers)
    assert (info.reason, info.source_topic) == ("not JSON: invalid utf-8", topics.transactions)
    assert (info.source_partition, info.source_offset) == (3, 41)
    assert (plain.key, plain.value, tuple(plain.headers)) == (None, b"plain", ())


async def test_two_consumers_of_a_group_split_the_partitions(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    await ensure_topics(kafka_settings, [topics.transactions], PARTITIONS)
    await produce(kafka_settings, keyed(topics.transactions, range(400)))
    group = f"{topics.transactions}-workers"
    first = make_consumer(kafka_settings, topics.transactions, group_id=group)
    second = make_consumer(kafka_settings, topics.transactions, group_id=group)
    read: dict[int, list[Any]] = {0: [], 1: []}

    def split() -> bool:
        assigned = [first.assignment(), second.assignment()]
        seen = {number for records in read.values() for number in numbers(records)}
        return all(assigned) and len(assigned[0] | assigned[1]) == PARTITIONS and len(seen) == 400

    async with (
        running(first, kafka_settings, "consumer"),
        running(second, kafka_settings, "consumer"),
    ):
        async with asyncio.timeout(WAIT_SECONDS):
            while not split():
                for index, consumer in enumerate((first, second)):
                    batch = await consumer.getmany(timeout_ms=50)
                    read[index] += [record for part in batch.values() for record in part]
        assignments = [first.assignment(), second.assignment()]
    assert not assignments[0] & assignments[1]
    assert {tp.partition for tp in assignments[0] | assignments[1]} == set(range(PARTITIONS))
    # Each read some; a record read by both was read before the group settled, uncommitted.
    assert read[0]
    assert read[1]


async def test_start_gives_up_after_bounded_attempts_naming_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    settings = KafkaSettings(
        f"127.0.0.1:{port}", connect_attempts=3, connect_backoff_ms=50, connect_backoff_max_ms=80
    )
    producer = make_producer(settings)
    started = time.monotonic()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="pipelines.stream.kafka_clients"),
            pytest.raises(BrokerUnavailableError, match=rf"127\.0\.0\.1:{port} in 3 attempts"),
        ):
            await start_with_retry(producer, settings, "producer")
    finally:
        await producer.stop()
    assert time.monotonic() - started >= 0.05 + 0.08  # it waited between attempts
    retries = [r.getMessage() for r in caplog.records if r.name == "pipelines.stream.kafka_clients"]
    assert len(retries) == 2
    assert "attempt 1 of 3" in retries[0]


async def test_start_waits_for_a_broker_that_comes_up_late(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    late = KafkaBroker(tmp_path)
    settings = dataclasses.replace(
        kafka_settings, bootstrap=late.bootstrap, connect_backoff_ms=100, connect_backoff_max_ms=400
    )

    async def start_later() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(late.start)

    starting = asyncio.create_task(start_later())
    try:
        async with running(make_producer(settings), settings, "producer") as producer:
            await starting
            await send_batch_and_wait(producer, keyed(topics.transactions, range(10)))
    finally:
        await starting
        late.stop()
