"""What feature state stores and answers, independent of where it lives.

The features need, per transaction, a handful of window totals for its card and its terminal.
A `FeatureState` records each transaction once and answers those totals as they stand right
after it, in event time; the in-memory and Redis stores implement the same protocol, so the
stream, the HTTP path and the offline evaluation all read identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from models.schemas import Transaction

DAY = 86_400


def event_second(timestamp: datetime) -> int:
    """Whole seconds since the epoch: the resolution of every window."""
    return math.floor(timestamp.timestamp())


def hundredths(amount: float) -> int:
    """An amount in hundredths of its unit, as window totals hold it."""
    return round(amount * 100)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The windows every feature is computed over.

    Card windows are ``(t - n days, t]`` and include the transaction being scored. Terminal
    windows are shifted back by the label delay, ``(t - delay - n days, t - delay]``, so that
    a terminal's fraud rate only uses transactions whose labels are known by the time ``t``.
    """

    windows_days: tuple[int, ...] = (1, 7, 30)
    label_delay_seconds: int = 7 * DAY

    def __post_init__(self) -> None:
        if not self.windows_days or any(days <= 0 for days in self.windows_days):
            raise ValueError("windows_days must hold positive day counts")
        if list(self.windows_days) != sorted(set(self.windows_days)):
            raise ValueError("windows_days must be strictly increasing")
        if self.label_delay_seconds < 0:
            raise ValueError("label_delay_seconds must not be negative")

    @property
    def window_seconds(self) -> tuple[int, ...]:
        return tuple(days * DAY for days in self.windows_days)

    @property
    def card_horizon(self) -> int:
        """How far back a card's history is ever read, in seconds."""
        return self.windows_days[-1] * DAY

    @property
    def terminal_horizon(self) -> int:
        """How far back a terminal's history is ever read, in seconds."""
        return self.label_delay_seconds + self.windows_days[-1] * DAY


class WindowAggregates(NamedTuple):
    """Window totals for one transaction, in the order of `WindowSpec.windows_days`.

    A named tuple rather than a dataclass: one is built per transaction on the hot path.
    """

    card_counts: list[int]
    card_amount_hundredths: list[int]
    """Amount totals in hundredths of the currency unit: integers keep windows exact."""
    seconds_since_previous: int | None
    """Since the card's previous transaction within its horizon; ``None`` when there is none."""
    card_used_terminal_before: bool
    """Whether the card used this terminal in the card's horizon before this transaction."""
    terminal_counts: list[int]
    terminal_frauds: list[int]
    duplicate: bool
    """The transaction id was seen before: state was not updated again."""


@dataclass(frozen=True, slots=True)
class FraudReport:
    """A fraud label's effect on terminal risk: one more (or one fewer) fraud at that second."""

    terminal_id: str
    second: int
    change: int = 1


class FeatureState(Protocol):
    """Event-time window state shared by every scorer of a deployment."""

    @property
    def spec(self) -> WindowSpec: ...

    def observe(self, transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        """Record each transaction once and return its aggregates as they stand right after it.

        A transaction id seen before is not recorded again and comes back flagged
        ``duplicate``. A store that keeps each id's first answer returns that (Redis: a worker
        that died between recording a batch and storing its scores re-scores the replay from
        the very same features); one that does not reads the aggregates as they stand at the
        transaction's time (in memory, where the detector keeps the first score itself).
        """
        ...

    def record_frauds(self, reports: Sequence[FraudReport]) -> None:
        """Count (or retract) labelled frauds in their terminals' buckets, at event time."""
        ...
