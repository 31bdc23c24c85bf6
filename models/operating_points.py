"""What-if for the alert budget: what each threshold, or each daily card budget, would have
given over labelled days, so a team picks its operating point from data.

The input is one row per labelled transaction, with the columns of `models.metrics` (event
``timestamp``, ``card_id``, the ``score`` it got at arrival, ``is_fraud`` and when that was
known), as the offline store keeps them; the figures are those metrics, taken at each point.
They are per transaction and before the per-card alert cooldown, which would only remove
repeats of a card already alerted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from models.alerting import exceeds
from models.metrics import (
    alert_precision,
    card_precision_at_k,
    checked,
    recall_at_budget,
    threshold_alert_metrics,
)

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(1, 20))
DEFAULT_BUDGETS: tuple[int, ...] = (10, 25, 50, 100, 200, 500)


@dataclass(frozen=True)
class ThresholdPoint:
    """What alerting every transaction scored above ``threshold`` would have given (strictly
    above, as the service alerts)."""

    threshold: float
    alerts_per_day: float
    precision: float
    """Share of the alerted transactions that were fraud (NaN: none alerted)."""
    recall: float
    """Share of the frauds that were alerted (NaN: no fraud)."""
    legitimate_cards_bothered_per_day: float
    """Cards with a legitimate transaction alerted, each counted once a day."""


@dataclass(frozen=True)
class BudgetPoint:
    """What investigating the ``cards_per_day`` highest-scored cards of each day would give
    (cards already known compromised are left out, as `models.metrics` ranks them)."""

    cards_per_day: int
    card_precision: float
    """Card Precision@k: compromised cards found over the budget."""
    alert_precision: float
    """Compromised cards found over the cards flagged (a short list on a quiet day)."""
    card_recall: float
    """Share of the compromised card-days that were investigated."""


def threshold_points(
    frame: pd.DataFrame, days: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> list[ThresholdPoint]:
    """One point per threshold over ``frame``, which spans ``days`` days.

    Examples
    --------
    >>> t = pd.Timestamp("2018-08-01", tz="UTC")
    >>> frame = pd.DataFrame({"timestamp": [t] * 4, "card_id": ["a", "b", "b", "c"],
    ...                       "score": [0.9, 0.7, 0.2, 0.6],
    ...                       "is_fraud": [True, False, False, True], "label_known_at": [t] * 4})
    >>> point = threshold_points(frame, days=1, thresholds=[0.5])[0]
    >>> point.alerts_per_day, round(point.precision, 3), point.recall
    (3.0, 0.667, 1.0)
    >>> point.legitimate_cards_bothered_per_day
    1.0
    """
    if not days > 0:
        raise ValueError(f"the rows must span a positive number of days, got {days}")
    rows = checked(frame)
    day = rows["timestamp"].dt.floor("D")
    points = []
    for threshold in thresholds:
        alerts = threshold_alert_metrics(rows, threshold)
        bothering = exceeds(rows["score"], threshold) & ~rows["is_fraud"]
        bothered = rows.loc[bothering, "card_id"].groupby(day[bothering]).nunique().sum()
        points.append(
            ThresholdPoint(
                threshold=float(threshold),
                alerts_per_day=alerts.alerts / days,
                precision=alerts.precision,
                recall=alerts.recall,
                legitimate_cards_bothered_per_day=float(bothered) / days,
            )
        )
    return points


def budget_points(
    frame: pd.DataFrame, budgets: Sequence[int] = DEFAULT_BUDGETS
) -> list[BudgetPoint]:
    """One point per daily card budget.

    Examples
    --------
    >>> t = pd.Timestamp("2018-08-01", tz="UTC")
    >>> frame = pd.DataFrame({"timestamp": [t] * 4, "card_id": ["a", "b", "b", "c"],
    ...                       "score": [0.9, 0.7, 0.2, 0.6],
    ...                       "is_fraud": [True, False, False, True], "label_known_at": [t] * 4})
    >>> [(p.card_precision, p.card_recall) for p in budget_points(frame, budgets=[1, 2])]
    [(1.0, 0.5), (0.5, 0.5)]
    """
    rows = checked(frame)
    return [
        BudgetPoint(
            cards_per_day=budget,
            card_precision=card_precision_at_k(rows, budget),
            alert_precision=alert_precision(rows, budget),
            card_recall=recall_at_budget(rows, budget).card_recall,
        )
        for budget in budgets
    ]
