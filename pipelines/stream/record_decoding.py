"""Consumed records into contract objects; whatever does not validate becomes a dead letter.

A bad record must neither crash a worker nor be lost: it goes to the dead-letter topic with its
original key and bytes (a timestamp outside the window the validation context allows is bad
too: `models.event_time`) and, in headers, the reason and where it came from. The good records
around it go on. A record over the size limit keeps only its first bytes there (any broker
limits the dead-letter topic too), with its length and sha256 in headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka.structs import TopicPartition
from pydantic import BaseModel, ValidationError

from pipelines.stream.dead_letters import (
    dead_letter_headers,
    describe_validation_error,
    oversize_reason,
)
from pipelines.stream.kafka_clients import OutgoingRecord

Contract = TypeVar("Contract", bound=BaseModel)

ORIGINAL_BYTES_HEADER = "fraudstream-original-bytes"
"""On a dead letter cut to the size limit: how long the original value was."""
ORIGINAL_SHA256_HEADER = "fraudstream-original-sha256"


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


@dataclass(frozen=True)
class Decoded(Generic[Contract]):
    """A batch of records decoded: the valid ones with the record each came from, and the
    dead letters of the others."""

    valid: list[Contract]
    sources: list[Record]
    """``sources[i]`` is the record ``valid[i]`` was decoded from."""
    dead: list[OutgoingRecord]


def decode_batch(
    records: Sequence[Record],
    contract: type[Contract],
    dlq_topic: str,
    max_record_bytes: int,
    *,
    context: dict[str, Any] | None = None,
) -> Decoded[Contract]:
    """The records that validate as ``contract`` (with the validation ``context``: the event
    times accepted now), and a dead letter for each that does not."""
    valid: list[Contract] = []
    sources: list[Record] = []
    dead: list[OutgoingRecord] = []
    for record in records:
        value = record.value or b""
        extra: list[tuple[str, bytes]] = []
        if len(value) > max_record_bytes:
            reason = oversize_reason(len(value), max_record_bytes)
            # A dead-letter topic is bound by the same broker limits that may have let the
            # record in at their very edge: keep its head, and say how long it was and what
            # it hashed to, so it can be matched with the producer's copy.
            extra = [
                (ORIGINAL_BYTES_HEADER, str(len(value)).encode()),
                (ORIGINAL_SHA256_HEADER, hashlib.sha256(value).hexdigest().encode()),
            ]
            value = value[:max_record_bytes]
        else:
            try:
                valid.append(contract.model_validate_json(value, context=context))
                sources.append(record)
                continue
            except ValidationError as error:
                reason = describe_validation_error(error)
        headers = dead_letter_headers(reason, record.topic, record.partition, record.offset)
        dead.append(OutgoingRecord(dlq_topic, record.key, value, headers + extra))
    return Decoded(valid, sources, dead)


def decode_records(
    records: Sequence[Record],
    contract: type[Contract],
    dlq_topic: str,
    max_record_bytes: int,
    *,
    context: dict[str, Any] | None = None,
) -> tuple[list[Contract], list[OutgoingRecord]]:
    """`decode_batch` without the sources: the valid contracts, and the dead letters."""
    decoded = decode_batch(records, contract, dlq_topic, max_record_bytes, context=context)
    return decoded.valid, decoded.dead


def dead_letter(record: Record, reason: str, dlq_topic: str) -> OutgoingRecord:
    """The dead letter of a record that decoded but was refused later (a conflicting repeat)."""
    headers = dead_letter_headers(reason, record.topic, record.partition, record.offset)
    return OutgoingRecord(dlq_topic, record.key, record.value or b"", headers)


def next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """The offsets to commit once ``records`` are done: one past the last of each partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets
