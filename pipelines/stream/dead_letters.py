"""The dead-letter envelope: a bad record kept as it came, with why and where from.

A dead letter's value and key are the original record's bytes, untouched, so that it can be
inspected, fixed and replayed with ordinary tools; the reason and the record's origin travel in
Kafka headers. Everything here is pure: the consumer decides what is bad, this module only
says so in a form that tools (and tests) can read back.

Reasons never quote the input: a header is read by people and tools that should not see card
data, and a bad record may be megabytes long.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

REASON = "fraudstream-reason"
SOURCE_TOPIC = "fraudstream-source-topic"
SOURCE_PARTITION = "fraudstream-source-partition"
SOURCE_OFFSET = "fraudstream-source-offset"

ERRORS_NAMED = 3
"""How many of a record's validation errors a reason spells out; the rest are counted."""
MAX_REASON_CHARS = 500


class NotADeadLetterError(ValueError):
    """The headers lack one of the dead-letter headers, or one of them is unreadable."""


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """What the headers of a dead letter say about it."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int


def dead_letter_headers(
    reason: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Headers for the dead letter of the record at ``topic``/``partition``/``offset``.

    Examples
    --------
    >>> dead_letter_headers("not JSON", "transactions", 3, 42)  # doctest: +NORMALIZE_WHITESPACE
    [('fraudstream-reason', b'not JSON'), ('fraudstream-source-topic', b'transactions'),
     ('fraudstream-source-partition', b'3'), ('fraudstream-source-offset', b'42')]
    """
    return [
        (REASON, _bounded(reason).encode()),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]


def read_dead_letter_headers(headers: Iterable[tuple[str, bytes]]) -> DeadLetterInfo:
    """The inverse of `dead_letter_headers`; other headers are ignored.

    Examples
    --------
    >>> headers = dead_letter_headers("not JSON", "transactions", 3, 42)
    >>> read_dead_letter_headers(headers)  # doctest: +NORMALIZE_WHITESPACE
    DeadLetterInfo(reason='not JSON', source_topic='transactions', source_partition=3,
                   source_offset=42)
    """
    # The last value wins, as a repeated header would in most Kafka tooling.
    found = dict(headers)
    try:
        return DeadLetterInfo(
            reason=found[REASON].decode(),
            source_topic=found[SOURCE_TOPIC].decode(),
            source_partition=int(found[SOURCE_PARTITION]),
            source_offset=int(found[SOURCE_OFFSET]),
        )
    except KeyError as missing:
        raise NotADeadLetterError(f"no {missing.args[0]} header") from None
    except ValueError as error:  # bytes that are not UTF-8 or not a number
        raise NotADeadLetterError(f"unreadable dead-letter header: {error}") from None


def describe_validation_error(error: ValidationError) -> str:
    """A short reason naming the field(s) at fault, from a pydantic validation error.

    Examples
    --------
    >>> from pydantic import BaseModel, Field
    >>> class Payment(BaseModel):
    ...     amount: float = Field(gt=0)
    ...     card_id: str
    >>> def reason(raw: bytes) -> str:
    ...     try:
    ...         Payment.model_validate_json(raw)
    ...     except ValidationError as error:
    ...         return describe_validation_error(error)
    ...     return "valid"
    >>> reason(b'{"amount": -5, "card_id": "c1"}')
    'amount: Input should be greater than 0'
    >>> reason(b'{}')
    'amount: Field required; card_id: Field required'
    >>> reason(b'{"amount": ')
    'not JSON: EOF while parsing a value at line 1 column 11'
    >>> reason(b'[1, 2]')
    'Input should be an object'
    """
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    if problems and problems[0]["type"] == "json_invalid":
        detail = problems[0]["msg"].removeprefix("Invalid JSON: ")
        return not_json_reason(detail)
    named = [
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
        if problem["loc"]
        else problem["msg"]
        for problem in problems[:ERRORS_NAMED]
    ]
    reason = "; ".join(named)
    if len(problems) > ERRORS_NAMED:
        reason += f" (and {len(problems) - ERRORS_NAMED} more)"
    return _bounded(reason)


def not_json_reason(detail: str | None = None) -> str:
    """The reason for a record whose bytes are not JSON.

    Examples
    --------
    >>> not_json_reason()
    'not JSON'
    >>> not_json_reason("invalid utf-8")
    'not JSON: invalid utf-8'
    """
    return "not JSON" if detail is None else _bounded(f"not JSON: {detail}")


def oversize_reason(size: int, limit: int) -> str:
    """The reason for a record longer than the consumer accepts.

    Examples
    --------
    >>> oversize_reason(2_000_000, 1_048_576)
    'over the size limit (2000000 bytes > 1048576)'
    """
    return f"over the size limit ({size} bytes > {limit})"


def _bounded(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 1] + "…"
