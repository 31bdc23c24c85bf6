"""The content digest that tells a repeated transaction from another one under the same id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.idempotency import ConflictingRepeatError, content_digest
from tests.builders import make_tx


def test_the_digest_ignores_how_the_same_instant_was_written() -> None:
    tx = make_tx(1)
    paris = tx.timestamp.astimezone(timezone(timedelta(hours=2)))
    again = type(tx).model_validate({**tx.model_dump(), "timestamp": paris.isoformat()})
    assert again.timestamp == tx.timestamp
    assert content_digest(again) == content_digest(tx)
    assert len(content_digest(tx)) == 8


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": datetime(2018, 4, 1, 0, 0, 1, tzinfo=UTC)},
        {"card_id": "c2"},
        {"terminal_id": "p2"},
        {"amount": 10.01},
        {"currency": "USD"},
        {"merchant_category": "5411"},
        {"channel": "ecommerce"},
        {"country": "FR"},
    ],
)
def test_the_digest_changes_with_every_field_but_the_id(change: dict[str, object]) -> None:
    tx = make_tx(1)
    assert content_digest(tx.model_copy(update=change)) != content_digest(tx)
    assert content_digest(tx.model_copy(update={"transaction_id": "other"})) == content_digest(tx)


def test_the_conflict_names_its_ids_and_counts_the_rest() -> None:
    ids = [f"t{index}" for index in range(12)]
    error = ConflictingRepeatError(list(range(12)), ids)
    assert error.positions == tuple(range(12))
    assert "t0, t1" in str(error)
    assert "t11" not in str(error)
    assert "(and 2 more)" in str(error)
