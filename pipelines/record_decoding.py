"""Consumed records into contract objects; whatever does not validate becomes a dead letter.

A bad record must neither crash a worker nor be lost: it goes to the dead-letter topic with its
original key and bytes and, in headers, the reason and where it came from. The good records
around it go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from aiokafka.structs import TopicPartition
from pydantic import BaseModel, ValidationError

from pipelines.dead_letters import (
    dead_letter_headers,
    describe_validation_error,
    oversize_reason,
)
from pipelines.kafka_clients import OutgoingRecord

Contract = TypeVar("Contract", bound=BaseModel)


class Record(Protocol):
    """What is read of a consumed record (aiokafka's `ConsumerRecord`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def decode_records(
    records: Sequence[Record], contract: type[Contract], dlq_topic: str, max_record_bytes: int
) -> tuple[list[Contract], list[OutgoingRecord]]:
    """The records that validate as ``contract``, and a dead letter for each that does not."""
    valid: list[Contract] = []
    dead: list[OutgoingRecord] = []
    for record in records:
        value = record.value or b""
        if len(value) > max_record_bytes:
            reason = oversize_reason(len(value), max_record_bytes)
        else:
            try:
                valid.append(contract.model_validate_json(value))
                continue
            except ValidationError as error:
                reason = describe_validation_error(error)
        headers = dead_letter_headers(reason, record.topic, record.partition, record.offset)
        dead.append(OutgoingRecord(dlq_topic, record.key, value, headers))
    return valid, dead


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The offsets to commit once ``records`` are done: one past the last of each partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets
