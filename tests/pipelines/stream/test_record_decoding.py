"""Decoding consumed records: what the validation context refuses becomes a dead letter too."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from models.event_time import EventTimeBounds
from models.schemas import Label, Transaction
from pipelines.bench.stream.rates import consumed_records
from pipelines.stream.dead_letters import read_dead_letter_headers
from pipelines.stream.kafka_clients import OutgoingRecord
from pipelines.stream.record_decoding import decode_batch, decode_records
from pipelines.stream.topics import Topics
from tests.builders import make_tx

TOPICS = Topics.with_prefix("test.")
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
CONTEXT = EventTimeBounds().window(NOW).context()


def _records(values: list[bytes], topic: str = TOPICS.transactions) -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, b"k", value) for value in values]


def _with_timestamp(timestamp: str) -> bytes:
    document = orjson.loads(make_tx(1).model_dump_json())
    return orjson.dumps({**document, "timestamp": timestamp})


def test_out_of_range_timestamps_become_dead_letters_with_their_reason() -> None:
    values = [
        make_tx(1).model_copy(update={"timestamp": NOW}).model_dump_json().encode(),
        _with_timestamp("9999-12-31T23:59:59Z"),
        _with_timestamp("9999-12-31T23:59:59+14:00"),
        _with_timestamp("9999-12-31T23:59:59-14:00"),
        _with_timestamp("0001-01-01T00:00:00+14:00"),
        _with_timestamp("1999-12-31T23:59:59Z"),
    ]
    records = consumed_records(_records(values), partitions=1)
    decoded = decode_batch(records, Transaction, TOPICS.dlq, 10_000, context=CONTEXT)
    assert [tx.timestamp for tx in decoded.valid] == [NOW]
    assert decoded.sources == [records[0]]
    reasons = [read_dead_letter_headers(letter.headers or []).reason for letter in decoded.dead]
    assert [letter.value for letter in decoded.dead] == values[1:]
    assert all(reason.startswith("timestamp: ") for reason in reasons)
    assert "ahead of the service's clock" in reasons[0]
    assert "ahead of the service's clock" in reasons[1]
    assert "outside the years 1 to 9999" in reasons[2]
    assert "outside the years 1 to 9999" in reasons[3]
    assert "earliest event time" in reasons[4]


def test_without_a_context_a_replay_of_old_data_decodes() -> None:
    records = consumed_records(_records([make_tx(1).model_dump_json().encode()]), partitions=1)
    valid, dead = decode_records(records, Transaction, TOPICS.dlq, 10_000)
    assert (len(valid), dead) == (1, [])


def test_a_label_from_the_future_is_a_dead_letter_naming_labelled_at() -> None:
    label = {
        "transaction_id": "t1",
        "is_fraud": True,
        "labelled_at": "9999-12-31T23:59:59Z",
        "source": "chargeback",
    }
    records = consumed_records(_records([orjson.dumps(label)], TOPICS.labels), partitions=1)
    valid, [letter] = decode_records(records, Label, TOPICS.dlq, 10_000, context=CONTEXT)
    assert valid == []
    assert read_dead_letter_headers(letter.headers or []).reason.startswith("labelled_at: ")
