"""Small builders shared by the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.schemas import Label, LabelSource, Transaction

START = datetime(2018, 4, 1, tzinfo=UTC)


def make_tx(
    index: int,
    *,
    hours: float = 0.0,
    card: str = "c1",
    terminal: str = "p1",
    amount: float = 10.0,
) -> Transaction:
    return Transaction(
        transaction_id=f"t{index}",
        timestamp=START + timedelta(hours=hours),
        card_id=card,
        terminal_id=terminal,
        amount=amount,
        currency="EUR",
    )


def make_label(index: int, is_fraud: bool, *, hours: float = 0.0) -> Label:
    return Label(
        transaction_id=f"t{index}",
        is_fraud=is_fraud,
        labelled_at=START + timedelta(hours=hours),
        source=LabelSource.ANALYST,
    )
