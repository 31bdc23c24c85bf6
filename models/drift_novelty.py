"""Card-day novelty: how many of today's cards behaved as no card of the reference window did.

A new pattern that starts with a handful of cards crowds no cell and moves no marginal, but each
of its cards may look, over its day, like nothing seen before: many payments, all tiny, at night,
on new terminals. The statistic needs no label and names no pattern:

1. each card's transactions of one day become one **profile**: their count and, for every
   feature of the payment itself (`profiled_features`), the day's minimum and sum
   (`card_day_profiles`): the smallest amount, how many payments were at night or on a
   terminal new to the card, the day's total; nothing in it is chosen for a known pattern;
2. an isolation forest is fitted on the reference window's card-days (each column first mapped
   to ``sign(x) log(1 + |x|)``, so seconds, counts and amounts weigh alike) and the recent
   day's card-days are scored with it;
3. a card-day is **novel** when it is more isolated than all but ``quantile_tail`` of the
   reference's card-days; on a day like the reference, novel card-days number about
   ``quantile_tail`` times the day's card-days, Poisson, so the count's upper tail is the
   p-value (`novelty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from models.drift_stats import poisson_upper_log10

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

__all__ = ["Novelty", "card_day_profiles", "novelty", "profile_columns", "profiled_features"]

WINDOW_AGGREGATES = ("card_tx_count_", "card_avg_amount_", "terminal_tx_count_")
"""Features that count or average a window of days: left out of the profile."""


def profiled_features(names: Sequence[str]) -> tuple[str, ...]:
    """The features a card-day profile summarises: those of the payment itself.

    A profile already sums up the card's day; the counts and averages over windows of days
    say the same of longer spans (the card's) or describe a terminal, and every column the
    forest may split on for nothing blunts it.

    >>> profiled_features(["amount", "card_tx_count_7d", "terminal_tx_count_1d", "is_night"])
    ('amount', 'is_night')
    """
    return tuple(name for name in names if not name.startswith(WINDOW_AGGREGATES))


def profile_columns(names: Sequence[str]) -> list[str]:
    """The names of `card_day_profiles`' columns for vectors of the features ``names``.

    >>> profile_columns(["amount", "is_night"])
    ['transactions', 'amount_min', 'amount_sum', 'is_night_min', 'is_night_sum']
    """
    columns = ["transactions"]
    for name in names:
        columns += [f"{name}_min", f"{name}_sum"]
    return columns


def card_day_profiles(rows: Floats, cards: Ints) -> Floats:
    """One profile per distinct key of ``cards`` (keys sorted): the rows' count, then each
    column's minimum and sum over the key's rows (`profile_columns` order).

    Sums rather than means: a card's few odd payments among its usual ones still add up
    (three night payments are three), where a mean would dilute them. ``cards`` keys
    card-days: a window of several days must give each day's cards their own keys.

    >>> rows = np.array([[1.0, 0.0], [3.0, 1.0], [5.0, 1.0]])
    >>> card_day_profiles(rows, np.array([7, 7, 2])).tolist()
    [[1.0, 5.0, 5.0, 1.0, 1.0], [2.0, 1.0, 4.0, 0.0, 1.0]]
    """
    width = rows.shape[1]
    if rows.shape[0] == 0:
        return np.empty((0, 1 + 2 * width))
    order = np.argsort(cards, kind="stable")
    ordered = rows[order]
    _, starts, counts = np.unique(cards[order], return_index=True, return_counts=True)
    mins = np.minimum.reduceat(ordered, starts, axis=0)
    sums = np.add.reduceat(ordered, starts, axis=0)
    per_feature = np.stack([mins, sums], axis=2).reshape(len(starts), 2 * width)
    return np.column_stack([counts.astype(np.float64), per_feature])


def _scaled(profiles: Floats) -> Floats:
    """``sign(x) log(1 + |x|)``: amounts, counts and seconds spread alike, order kept."""
    return np.sign(profiles) * np.log1p(np.abs(profiles))


@dataclass(frozen=True)
class Novelty:
    """Today's novel card-days against what a day like the reference would have."""

    card_days: int
    """Card-days of the recent day."""
    novel: int
    """Recent card-days more isolated than the reference's ``1 - quantile_tail`` quantile."""
    expected: float
    """``quantile_tail`` times `card_days`: the novel count of a day like the reference."""
    surprise: float
    """``-log10 P(X >= novel)`` for X Poisson with mean `expected`."""


def novelty(
    reference: Floats,
    recent: Floats,
    *,
    quantile_tail: float = 1e-4,
    trees: int = 200,
    seed: int = 0,
) -> Novelty:
    """How surprising the count of novel profiles in ``recent`` is, against ``reference``.

    Both are `card_day_profiles` (one row per card-day). An empty side gives no surprise.
    """
    if reference.shape[0] == 0 or recent.shape[0] == 0:
        return Novelty(int(recent.shape[0]), 0, 0.0, 0.0)
    # In an order of their own: the forest's subsamples depend on the rows' order, which
    # card keys (hashed) would otherwise set differently in every process.
    reference = reference[np.lexsort(reference.T[::-1])]
    forest = IsolationForest(n_estimators=trees, random_state=seed)
    forest.fit(_scaled(reference))
    # score_samples is higher for the more normal: negated, higher is more isolated.
    reference_isolation = -forest.score_samples(_scaled(reference))
    recent_isolation = -forest.score_samples(_scaled(recent))
    threshold = float(np.quantile(reference_isolation, 1.0 - quantile_tail))
    novel = int(np.count_nonzero(recent_isolation > threshold))
    expected = quantile_tail * recent.shape[0]
    surprise = float(poisson_upper_log10(np.array([float(novel)]), np.array([expected]))[0])
    return Novelty(int(recent.shape[0]), novel, expected, surprise)
