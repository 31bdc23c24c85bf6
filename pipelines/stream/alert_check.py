"""Whether alerts a crashed worker may have sent are in the alerts topic already.

A worker marks an alert delivered in Redis once the broker has acknowledged it. A crash between
the two leaves an alert sent but unmarked, and the batch's replay would send it again. So a
replay looks for its unmarked alerts in the alerts topic itself before sending them: in the
partition each one's key (the card id) goes to, over its latest `LOOKBACK_RECORDS` records,
read to the partition's end. Only a repeated transaction can have an unmarked alert there, so
a worker reads the topic only when it replays, never on the way of first sightings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import orjson
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped,unused-ignore]

from pipelines.stream.kafka_clients import (
    KafkaSettings,
    make_consumer,
    partition_for,
    start_with_retry,
)

logger = logging.getLogger(__name__)

LOOKBACK_RECORDS = 50_000
"""Records read back in each partition: a replay follows its crash within seconds (the
group's session timeout), far fewer alerts than this apart."""

READ_SECONDS = 10.0
"""Longest a look takes; what is not found by then is sent again (at least once)."""


class AlertTopicCheck:
    """Reads the alerts topic back, without a consumer group, for the ids a replay asks about."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, *, lookback: int = LOOKBACK_RECORDS
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._lookback = lookback
        self._consumer = make_consumer(kafka, group_id=None)

    async def start(self) -> None:
        await start_with_retry(self._consumer, self._kafka, "alerts reader")

    async def stop(self) -> None:
        await self._consumer.stop()

    async def sent(self, alerts: Iterable[tuple[str, str]]) -> set[str]:
        """Those of ``alerts`` (transaction id, card id) found in the alerts topic."""
        deadline = time.monotonic() + READ_SECONDS
        partitions = sorted(await self._partitions(deadline))
        if not partitions:
            logger.warning("no partitions of %s known: unmarked alerts may repeat", self._topic)
            return set()
        wanted: dict[TopicPartition, set[str]] = {}
        for transaction_id, card_id in alerts:
            partition = partition_for(card_id.encode(), partitions)
            wanted.setdefault(TopicPartition(self._topic, partition), set()).add(transaction_id)
        if not wanted:
            return set()
        consumer = self._consumer
        consumer.assign(list(wanted))
        ends = await consumer.end_offsets(list(wanted))
        for partition in wanted:
            consumer.seek(partition, max(0, ends[partition] - self._lookback))
        found: set[str] = set()
        pending = set(wanted)
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(*pending, timeout_ms=200)
            for partition, records in fetched.items():
                for record in records:
                    read = _transaction_id(record.value)
                    if read is not None and read in wanted[partition]:
                        found.add(read)
            for partition in list(pending):
                highwater = consumer.highwater(partition)
                if highwater is not None and await consumer.position(partition) >= highwater:
                    pending.discard(partition)
        if pending:
            logger.warning(
                "alerts topic not read to its end within %.0f s: unmarked alerts may repeat",
                READ_SECONDS,
            )
        return found

    async def _partitions(self, deadline: float) -> set[int]:
        """The topic's partitions, its metadata loaded first if need be (the worker ensured
        the topic at start-up; an empty set if it never shows up before ``deadline``)."""
        partitions = self._consumer.partitions_for_topic(self._topic)
        while partitions is None and time.monotonic() < deadline:
            await self._consumer.topics()  # loads the metadata
            partitions = self._consumer.partitions_for_topic(self._topic)
            if partitions is None:
                await asyncio.sleep(0.1)
        return set(partitions or ())


def _transaction_id(value: bytes | None) -> str | None:
    try:
        transaction_id = orjson.loads(value or b"null")["transaction"]["transaction_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return transaction_id if isinstance(transaction_id, str) else None
