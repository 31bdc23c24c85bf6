"""When a score becomes an alert: a threshold, or a daily budget of cards, and a cooldown.

Investigators have fixed capacity, so besides a fixed threshold the policy can hold a budget of
about ``k`` alerted cards a day: the threshold then follows a running quantile of recent scores,
at the level that leaves ``k`` of a day's transactions above it. Either way a card is alerted at
most once per cooldown period, in event time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, overload

from models.state import DAY

if TYPE_CHECKING:
    import pandas as pd

RECOMPUTE_EVERY = 1_000
"""Scores between two recomputations of the budget threshold (a sort of the recent window)."""


@overload
def exceeds(score: float, threshold: float) -> bool: ...
@overload
def exceeds(score: pd.Series[float], threshold: float) -> pd.Series[bool]: ...
def exceeds(score: float | pd.Series[float], threshold: float) -> bool | pd.Series[bool]:
    """Whether a score, or each of a column of scores, alerts at ``threshold``: strictly above.

    The one comparison the service decides with and the what-if and backtest count with, so
    their figures are the alerts the service would raise. Strictly: a model that knows nothing
    scores exactly its prior (0.5 when fresh) and must not alert on every card.

    >>> exceeds(0.5, 0.5), exceeds(0.51, 0.5)
    (False, True)
    """
    return score > threshold


@dataclass(frozen=True)
class AlertPolicyConfig:
    """How alerts are decided.

    With ``daily_budget`` unset, ``threshold`` is fixed. With it set, ``threshold`` is only the
    starting point until ``warm_up_scores`` scores have been seen.
    """

    threshold: float = 0.5
    daily_budget: int | None = None
    cooldown_seconds: int = DAY
    window_scores: int = 50_000
    """Recent scores the budget's quantile is taken over."""
    warm_up_scores: int = 2_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], not {self.threshold}")
        if self.daily_budget is not None and self.daily_budget <= 0:
            raise ValueError("daily_budget must be positive")
        if self.cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")


class CooldownBook(Protocol):
    """When each card was last alerted, in event seconds: kept in memory, or in Redis so that
    every worker of a deployment honours one cooldown per card (a remote book loads ahead and
    writes behind on its own terms: `pipelines.state.buffering`)."""

    def last(self, card_id: str) -> int | None: ...

    def mark(self, card_id: str, second: int) -> None: ...


class MemoryCooldownBook:
    """The cooldown book of one process, pruned as event time moves past the cooldown."""

    def __init__(self, cooldown_seconds: int) -> None:
        self._cooldown = cooldown_seconds
        self._last: dict[str, int] = {}
        self._next_prune = 0

    def last(self, card_id: str) -> int | None:
        return self._last.get(card_id)

    def mark(self, card_id: str, second: int) -> None:
        self._last[card_id] = second
        if second >= self._next_prune:
            cutoff = second - self._cooldown
            self._last = {card: at for card, at in self._last.items() if at > cutoff}
            self._next_prune = second + max(self._cooldown, 1)


class AlertPolicy:
    """Decides, transaction by transaction, whether a score raises an alert.

    Examples
    --------
    >>> policy = AlertPolicy(AlertPolicyConfig(threshold=0.8, cooldown_seconds=3600))
    >>> policy.decide("card", 0.9, second=0), policy.decide("card", 0.95, second=60)
    (True, False)
    >>> policy.decide("card", 0.9, second=3601), policy.decide("other", 0.5, second=3601)
    (True, False)
    """

    def __init__(
        self, config: AlertPolicyConfig | None = None, book: CooldownBook | None = None
    ) -> None:
        self.config = config or AlertPolicyConfig()
        self.book: CooldownBook = book or MemoryCooldownBook(self.config.cooldown_seconds)
        self._threshold = self.config.threshold
        self._recent: deque[float] = deque(maxlen=self.config.window_scores)
        self._days: deque[tuple[int, int]] = deque(maxlen=8)
        """(event day, transactions scored that day), for the daily volume."""
        self._since_recompute = 0

    @property
    def threshold(self) -> float:
        """The score above which an alert is raised, as it stands now."""
        return self._threshold

    def decide(self, card_id: str, score: float, second: int) -> bool:
        """Whether this score alerts, given the card's cooldown; updates the policy."""
        if self.config.daily_budget is not None:
            self._track(score, second)
        if not exceeds(score, self._threshold):
            return False
        return self.force(card_id, second)

    def observe(self, score: float, second: int) -> None:
        """Count a score the policy does not decide (a rule did), so that a daily budget
        still sees every score."""
        if self.config.daily_budget is not None:
            self._track(score, second)

    def force(self, card_id: str, second: int) -> bool:
        """Alert whatever the score, unless the card is in its cooldown (an alert rule).

        >>> policy = AlertPolicy(AlertPolicyConfig(threshold=0.8, cooldown_seconds=3600))
        >>> policy.force("card", second=0), policy.force("card", second=60)
        (True, False)
        """
        last = self.book.last(card_id)
        if last is not None and second - last < self.config.cooldown_seconds:
            return False
        self.book.mark(card_id, second)
        return True

    def restore(self, card_id: str, second: int) -> None:
        """Mark again the cooldown of an alert that is re-emitted, not decided again.

        A process can die after storing an alert's answer and before writing its cooldown;
        the replay re-emits the stored answer, and this puts the cooldown back, so the card's
        next transactions are judged as they would have been. It never moves a cooldown back
        to an earlier alert.

        >>> policy = AlertPolicy(AlertPolicyConfig(threshold=0.8, cooldown_seconds=3600))
        >>> policy.restore("card", second=0)
        >>> policy.decide("card", 0.9, second=60)
        False
        >>> policy.decide("card", 0.9, second=3600), policy.book.last("card")
        (True, 3600)
        >>> policy.restore("card", second=0)
        >>> policy.book.last("card")
        3600
        """
        last = self.book.last(card_id)
        if last is None or last < second:
            self.book.mark(card_id, second)

    def _track(self, score: float, second: int) -> None:
        self._recent.append(score)
        day = second // DAY
        if self._days and self._days[-1][0] == day:
            self._days[-1] = (day, self._days[-1][1] + 1)
        else:
            self._days.append((day, 1))
        self._since_recompute += 1
        if len(self._recent) >= self.config.warm_up_scores and (
            self._since_recompute >= RECOMPUTE_EVERY
        ):
            self._since_recompute = 0
            self._threshold = self._budget_threshold()

    def _budget_threshold(self) -> float:
        budget = self.config.daily_budget
        assert budget is not None
        # Complete days say how many transactions a day brings; the current one is partial.
        complete = [count for _, count in list(self._days)[:-1]] or [self._days[-1][1]]
        daily_volume = sum(complete) / len(complete)
        share_above = min(1.0, budget / max(daily_volume, 1.0))
        ordered = sorted(self._recent)
        index = min(len(ordered) - 1, math.floor((1.0 - share_above) * len(ordered)))
        return ordered[index]
