"""The dead-letter envelope and its reasons, without a broker."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from models.schemas import Transaction
from pipelines.stream.dead_letters import (
    ERRORS_NAMED,
    MAX_REASON_CHARS,
    REASON,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    DeadLetterInfo,
    NotADeadLetterError,
    dead_letter_headers,
    describe_validation_error,
    not_json_reason,
    oversize_reason,
    read_dead_letter_headers,
)
from tests.builders import make_tx


def reason_for(raw: bytes) -> str:
    with pytest.raises(ValidationError) as caught:
        Transaction.model_validate_json(raw)
    return describe_validation_error(caught.value)


def tx_json(**changes: object) -> bytes:
    """A valid transaction's JSON, with ``changes`` made to it."""
    return orjson.dumps({**make_tx(1).model_dump(mode="json"), **changes})


def test_headers_are_named_and_utf8_and_read_back() -> None:
    headers = dead_letter_headers("amount: Input should be greater than 0", "prod.tx", 7, 12_345)
    assert [name for name, _ in headers] == [
        "fraudstream-reason",
        "fraudstream-source-topic",
        "fraudstream-source-partition",
        "fraudstream-source-offset",
    ]
    assert dict(headers)[SOURCE_OFFSET] == b"12345"
    assert read_dead_letter_headers(headers) == DeadLetterInfo(
        "amount: Input should be greater than 0", "prod.tx", 7, 12_345
    )


def test_non_ascii_reasons_round_trip() -> None:
    headers = dead_letter_headers("montant: négatif €", "tx", 0, 0)
    assert dict(headers)[REASON] == "montant: négatif €".encode()
    assert read_dead_letter_headers(headers).reason == "montant: négatif €"


def test_other_headers_are_ignored_as_kafka_hands_them_over() -> None:
    # A consumer hands headers over as a tuple of pairs, possibly among others.
    headers = (("trace-id", b"abc"), *dead_letter_headers("not JSON", "tx", 1, 2))
    assert read_dead_letter_headers(headers).source_partition == 1


def test_missing_or_unreadable_headers_are_not_a_dead_letter() -> None:
    complete = dead_letter_headers("not JSON", "tx", 1, 2)
    without_topic = [(name, value) for name, value in complete if name != SOURCE_TOPIC]
    with pytest.raises(NotADeadLetterError, match=SOURCE_TOPIC):
        read_dead_letter_headers(without_topic)
    garbled = [*complete, (SOURCE_PARTITION, b"one")]
    with pytest.raises(NotADeadLetterError, match="unreadable"):
        read_dead_letter_headers(garbled)
    with pytest.raises(NotADeadLetterError):
        read_dead_letter_headers([*complete, (REASON, b"\xff")])


def test_a_reason_names_the_field_at_fault() -> None:
    assert reason_for(tx_json(amount=-1)) == "amount: Input should be greater than or equal to 0"


def test_a_reason_names_a_few_fields_and_counts_the_rest() -> None:
    reason = reason_for(b"{}")
    assert reason.startswith("transaction_id: Field required; timestamp: Field required; ")
    assert reason.count("Field required") == ERRORS_NAMED
    assert reason.endswith("(and 3 more)")


def test_a_reason_never_quotes_the_input() -> None:
    reason = reason_for(tx_json(currency="4111111111111111"))
    assert reason.startswith("currency: String should match pattern")
    assert "4111" not in reason


def test_bytes_that_are_not_json_say_so() -> None:
    assert reason_for(b"\x00\x01binary").startswith("not JSON: ")
    assert reason_for(b"").startswith("not JSON: ")
    assert not_json_reason() == "not JSON"


def test_a_record_that_is_not_an_object_says_what_it_should_be() -> None:
    assert reason_for(b"[1, 2, 3]") == "Input should be an object"


def test_the_size_limit_reason_gives_both_sizes() -> None:
    assert oversize_reason(2_048, 1_024) == "over the size limit (2048 bytes > 1024)"


def test_reasons_are_bounded() -> None:
    long = dead_letter_headers("x" * 10_000, "tx", 0, 0)
    assert len(read_dead_letter_headers(long).reason) == MAX_REASON_CHARS
    assert len(not_json_reason("y" * 10_000)) == MAX_REASON_CHARS
