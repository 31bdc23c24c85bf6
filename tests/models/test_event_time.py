"""The event-time window: what live input may carry, checked by the contract itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from models.event_time import EventTimeBounds
from models.schemas import Label, Transaction

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
WINDOW = EventTimeBounds().window(NOW)


def transaction_json(timestamp: str) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": "t1",
            "timestamp": timestamp,
            "card_id": "c1",
            "terminal_id": "p1",
            "amount": 12.5,
            "currency": "EUR",
        }
    )


def label_json(labelled_at: str) -> bytes:
    return orjson.dumps(
        {
            "transaction_id": "t1",
            "is_fraud": True,
            "labelled_at": labelled_at,
            "source": "analyst",
        }
    )


def refusal(raw: bytes, contract: type[Transaction | Label]) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        contract.model_validate_json(raw, context=WINDOW.context())
    [problem] = caught.value.errors()
    return problem["loc"], problem["type"]


def test_the_window_runs_from_the_floor_to_the_clock_plus_the_skew() -> None:
    bounds = EventTimeBounds(timedelta(minutes=5), datetime(2010, 1, 1, tzinfo=UTC))
    window = bounds.window(NOW)
    assert window.refusal(NOW + timedelta(minutes=5)) is None
    assert window.refusal(datetime(2010, 1, 1, tzinfo=UTC)) is None
    assert "ahead of the service's clock" in str(window.refusal(NOW + timedelta(minutes=6)))
    assert "earliest" in str(window.refusal(datetime(2009, 12, 31, tzinfo=UTC)))


def test_bounds_refuse_a_negative_skew_and_a_naive_floor() -> None:
    with pytest.raises(ValueError, match="max_skew"):
        EventTimeBounds(max_skew=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="time zone"):
        EventTimeBounds(floor=datetime(2000, 1, 1))


@pytest.mark.parametrize(
    "timestamp",
    ["9999-12-31T23:59:59Z", "2026-12-07T13:00:01Z", "2026-12-07T14:00:01+01:00"],
)
def test_a_transaction_ahead_of_the_clock_is_refused_naming_its_field(timestamp: str) -> None:
    assert refusal(transaction_json(timestamp), Transaction) == (
        ("timestamp",),
        "event_time_out_of_range",
    )


def test_a_transaction_before_the_floor_is_refused() -> None:
    assert refusal(transaction_json("1999-12-31T23:59:59Z"), Transaction) == (
        ("timestamp",),
        "event_time_out_of_range",
    )


@pytest.mark.parametrize("labelled_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_a_label_out_of_the_window_is_refused_naming_labelled_at(labelled_at: str) -> None:
    assert refusal(label_json(labelled_at), Label) == (
        ("labelled_at",),
        "event_time_out_of_range",
    )


def test_times_within_the_window_pass_in_utc() -> None:
    tx = Transaction.model_validate_json(
        transaction_json("2026-12-07T13:30:00+01:00"), context=WINDOW.context()
    )
    assert tx.timestamp == datetime(2026, 12, 7, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
)
def test_a_time_outside_the_calendar_in_utc_is_a_validation_error_with_or_without_a_window(
    timestamp: str,
) -> None:
    for context in (None, WINDOW.context()):
        with pytest.raises(ValidationError) as caught:
            Transaction.model_validate_json(transaction_json(timestamp), context=context)
        [problem] = caught.value.errors()
        assert (problem["loc"], problem["type"]) == (("timestamp",), "datetime_out_of_range")


def test_without_a_window_replays_take_any_time_in_the_calendar() -> None:
    for timestamp in ("2018-04-01T00:00:00Z", "1990-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        assert Transaction.model_validate_json(transaction_json(timestamp)).timestamp.tzinfo is UTC
