"""Investigators in a replay: each day they check the cards the model ranks riskiest.

A fraud team checks a budget of alerted cards a day and knows the truth of each within a day
or so, long before the chargebacks; that feedback is the fastest label a bank has. In a
replay, at the end of each day the ``cards_per_day`` cards with the highest score that day
(cards already found compromised are blocked, so not checked again) are investigated, and
every transaction those cards made that day gets an analyst label ``delay_seconds`` after the
day ends. Every other label still comes as a chargeback, the replay's label delay late.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.schemas import Label, LabelSource, Transaction

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class FeedbackPolicy:
    """How many cards investigators check a day, and how long until they know."""

    cards_per_day: int
    delay_seconds: int = DAY_SECONDS

    def __post_init__(self) -> None:
        if self.cards_per_day < 1:
            raise ValueError(f"cards_per_day must be at least 1, got {self.cards_per_day}")
        if self.delay_seconds < 0:
            raise ValueError(f"delay_seconds must not be negative, got {self.delay_seconds}")


@dataclass
class Investigators:
    """The day's scored transactions by card, turned into analyst labels when the day ends."""

    policy: FeedbackPolicy
    _day: int | None = None
    _riskiest: dict[str, float] = field(default_factory=dict)
    _made: dict[str, list[tuple[Transaction, bool]]] = field(default_factory=dict)
    _compromised: set[str] = field(default_factory=set)

    def observe(
        self, second: int, tx: Transaction, is_fraud: bool, score: float
    ) -> list[tuple[int, Label]]:
        """Record a scored transaction; when it opens a new day, the labels the days before it
        give, each with the second it becomes known, in that order."""
        day = second // DAY_SECONDS
        found = self.close_day() if self._day is not None and day != self._day else []
        self._day = day
        card = tx.card_id
        if score > self._riskiest.get(card, -1.0):
            self._riskiest[card] = score
        self._made.setdefault(card, []).append((tx, is_fraud))
        return found

    def close_day(self) -> list[tuple[int, Label]]:
        """Investigate the open day's riskiest cards: their analyst labels, known ``delay``
        after the day ends."""
        if self._day is None:
            return []
        known = (self._day + 1) * DAY_SECONDS + self.policy.delay_seconds
        labelled_at = datetime.fromtimestamp(known, UTC)
        candidates = (
            (score, card) for card, score in self._riskiest.items() if card not in self._compromised
        )
        checked = heapq.nlargest(self.policy.cards_per_day, candidates)
        labels: list[tuple[int, Label]] = []
        for _, card in sorted(checked, key=lambda pair: pair[1]):
            made = self._made[card]
            if any(fraud for _, fraud in made):
                self._compromised.add(card)
            labels.extend(
                (
                    known,
                    Label(
                        transaction_id=tx.transaction_id,
                        is_fraud=fraud,
                        labelled_at=labelled_at,
                        source=LabelSource.ANALYST,
                    ),
                )
                for tx, fraud in made
            )
        self._day = None
        self._riskiest.clear()
        self._made.clear()
        return labels
