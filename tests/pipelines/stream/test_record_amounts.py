"""Consumed records become contract objects or dead letters naming the field at fault."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from models.schemas import Transaction
from pipelines.stream.dead_letters import read_dead_letter_headers
from pipelines.stream.record_decoding import decode_records
from tests.builders import make_tx


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _record(offset: int, amount: float) -> _Record:
    body = make_tx(offset).model_dump(mode="json") | {"amount": amount}
    return _Record("tx", 0, offset, b"c1", orjson.dumps(body))


def test_a_zero_amount_is_valid_and_a_negative_one_a_dead_letter() -> None:
    records = [_record(1, 0.0), _record(2, -0.01), _record(3, 12.5)]
    valid, dead = decode_records(records, Transaction, "tx.dlq", 65_536)
    assert [(tx.transaction_id, tx.amount) for tx in valid] == [("t1", 0.0), ("t3", 12.5)]
    [letter] = dead
    assert letter.value == records[1].value
    assert letter.headers is not None
    reason = read_dead_letter_headers(letter.headers).reason
    assert reason == "amount: Input should be greater than or equal to 0"
