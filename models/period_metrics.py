"""The evaluation of a test period: every metric, overall and week by week.

The metrics themselves live in `models.metrics`; this module cuts a period into weeks, takes
knowledge of compromised cards from the period alone, and shapes the figures for reports.
A week cut short by the end of the period is marked partial and left out of the weekly means
(a two-day "week" would weigh as much as a full one). When the rows carry a ``scenario``
column (the simulator's ``TX_FRAUD_SCENARIO``), every period also has each fraud scenario's AP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from models.metrics import (
    attainable_card_precision,
    average_precision,
    budget_recall,
    check_k,
    checked,
    daily_card_precisions,
    detected_rule_precisions,
    first_known_fraud,
    flagged_precision,
    mean,
    rank_card_days,
    roc_auc,
    scenario_average_precisions,
)

SCENARIO_COLUMN = "scenario"
"""Optional column of the scored rows: the fraud scenario (0 for legitimate rows)."""

K_SHARE_WARNING = 0.01
"""Warn when the daily budget k exceeds this share of the cards active a day: investigating
more than one card in a hundred every day is far beyond what a bank does, and CP@k then
measures a budget no team has."""

_DAY = pd.Timedelta(days=1)
_WEEK = timedelta(days=7)


def _json_ready(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class PeriodMetrics:
    """All figures of one period ``[start, end)``; undefined figures are ``nan``."""

    start: datetime
    end: datetime
    transactions: int
    frauds: int
    average_precision: float
    roc_auc: float
    card_precision_at_k: float
    card_precision_at_k_detected: float
    """CP@k under the handbook's rule for known cards, to compare with published figures."""
    alert_precision: float
    transaction_recall: float
    card_recall: float
    scenario_average_precision: Mapping[int, float] = field(default_factory=dict)
    """Each fraud scenario's AP against the legitimate rows, when the rows carry scenarios."""
    partial: bool = False
    """Shorter than a week (the period ended): shown, but left out of the weekly means."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: datetimes as ISO 8601 strings, ``nan`` as ``None``."""
        document = {name: _json_ready(value) for name, value in asdict(self).items()}
        document["scenario_average_precision"] = {
            str(kind): _json_ready(value) for kind, value in self.scenario_average_precision.items()
        }
        return document


@dataclass(frozen=True)
class EvaluationMetrics:
    """The test period as a whole and week by week, at an alert budget of ``k`` cards a day.

    The mean of the weekly figures is the headline: the acceptance criterion is stated on it,
    and it weighs each week equally, so a bad week after a fraud-pattern shift is not drowned
    by quiet ones. Weeks where a figure is undefined (e.g. no fraud) are left out of its mean.
    """

    k: int
    overall: PeriodMetrics
    weekly: tuple[PeriodMetrics, ...]
    mean_weekly_average_precision: float
    mean_weekly_card_precision_at_k: float
    mean_weekly_card_precision_at_k_detected: float
    attainable_card_precision_at_k: float = math.nan
    """The CP@k a perfect scorer would reach: below 1 on days with fewer frauds than k."""
    cards_per_day: float = math.nan
    """Distinct cards with a transaction, on the average day of the period."""
    warnings: tuple[str, ...] = ()
    """What a reader of the figures must know (a partial week, a budget k too large)."""

    @property
    def full_weeks(self) -> tuple[PeriodMetrics, ...]:
        """The weeks the means are taken over: the complete ones."""
        return tuple(week for week in self.weekly if not week.partial)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, nested the same way as the dataclass."""
        return {
            "k": self.k,
            "attainable_card_precision_at_k": _json_ready(self.attainable_card_precision_at_k),
            "cards_per_day": _json_ready(self.cards_per_day),
            "warnings": list(self.warnings),
            "overall": self.overall.to_dict(),
            "weekly": [week.to_dict() for week in self.weekly],
            "mean_weekly_average_precision": _json_ready(self.mean_weekly_average_precision),
            "mean_weekly_card_precision_at_k": _json_ready(self.mean_weekly_card_precision_at_k),
            "mean_weekly_card_precision_at_k_detected": _json_ready(
                self.mean_weekly_card_precision_at_k_detected
            ),
        }


def _as_utc(moment: datetime | pd.Timestamp, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return pd.Timestamp(moment).tz_convert(UTC).to_pydatetime()


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _period_bounds(
    rows: pd.DataFrame, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    days = rows["timestamp"].dt.floor("D")
    lower = _as_utc(days.min(), "timestamp") if start is None else _as_utc(start, "start")
    upper = _as_utc(days.max() + _DAY, "timestamp") if end is None else _as_utc(end, "end")
    return lower, upper


def _period_metrics(
    rows: pd.DataFrame,
    card_days: pd.DataFrame,
    detected_rule: pd.Series,
    start: datetime,
    end: datetime,
    k: int,
    scenario: pd.Series | None,
) -> PeriodMetrics:
    """Figures for the rows, card-days and daily precisions already cut to ``[start, end)``."""
    budget = budget_recall(card_days)
    by_scenario = (
        {}
        if scenario is None
        else scenario_average_precisions(scenario.loc[rows.index], rows["score"])
    )
    return PeriodMetrics(
        start=start,
        end=end,
        transactions=len(rows),
        frauds=int(rows["is_fraud"].sum()),
        average_precision=average_precision(rows["is_fraud"], rows["score"]),
        roc_auc=roc_auc(rows["is_fraud"], rows["score"]),
        card_precision_at_k=mean(daily_card_precisions(card_days, k)),
        card_precision_at_k_detected=mean(detected_rule.tolist()),
        alert_precision=flagged_precision(card_days),
        transaction_recall=budget.transaction_recall,
        card_recall=budget.card_recall,
        scenario_average_precision=by_scenario,
        partial=end - start < _WEEK,
    )


def _weeks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Consecutive 7-day periods from ``start``'s midnight, clipped to ``[start, end)``."""
    bounds = []
    week_start = _midnight(start)
    while week_start < end:
        bounds.append((max(week_start, start), min(week_start + _WEEK, end)))
        week_start += _WEEK
    return bounds


def evaluate_scores(
    frame: pd.DataFrame,
    *,
    k: int = 100,
    start: datetime | None = None,
    end: datetime | None = None,
) -> EvaluationMetrics:
    """Evaluate the scores of the test period ``[start, end)``, overall and week by week.

    ``start`` defaults to the first day's UTC midnight and ``end`` to the end of the last day.
    Only frauds of the period mark cards known compromised (see the module's docstring).

    Raises
    ------
    ValueError
        If a required column is missing or malformed, or the period holds no rows.

    Examples
    --------
    Two days, one fraud each day on a different card; the scorer ranks them first.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t, t + pd.Timedelta(days=1), t + pd.Timedelta(days=1)],
    ...     "card_id": ["a", "b", "c", "b"],
    ...     "score": [0.9, 0.2, 0.8, 0.1],
    ...     "is_fraud": [True, False, True, False],
    ...     "label_known_at": [t + pd.Timedelta(days=7)] * 4,
    ... })
    >>> result = evaluate_scores(frame, k=2)
    >>> result.overall.average_precision, result.overall.card_precision_at_k
    (1.0, 0.5)
    >>> [(week.start.date().isoformat(), week.transactions) for week in result.weekly]
    [('2018-08-08', 4)]
    """
    check_k(k)
    scenario = _scenarios(frame)
    rows = checked(frame)
    if rows.empty:
        raise ValueError("frame holds no rows")
    start, end = _period_bounds(rows, start, end)
    rows = rows.loc[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]
    if rows.empty:
        raise ValueError(f"no rows in the period [{start.isoformat()}, {end.isoformat()})")
    card_days = rank_card_days(rows, first_known_fraud(rows), k)
    detected_rule = detected_rule_precisions(rows, k)

    def period(lower: datetime, upper: datetime) -> PeriodMetrics:
        # Weeks start at midnight, so every card-day falls in exactly one week.
        first_day, days = _midnight(lower), detected_rule.index
        return _period_metrics(
            rows.loc[(rows["timestamp"] >= lower) & (rows["timestamp"] < upper)],
            card_days.loc[(card_days["day"] >= first_day) & (card_days["day"] < upper)],
            detected_rule.loc[(days >= first_day) & (days < upper)],
            lower,
            upper,
            k,
            scenario,
        )

    weekly = tuple(period(lower, upper) for lower, upper in _weeks(start, end))
    # A period shorter than a week has no full week: its one partial week is all there is.
    counted = [week for week in weekly if not week.partial] or list(weekly)
    cards_per_day = len(card_days) / card_days["day"].nunique()
    attainable = attainable_card_precision(card_days, k)
    return EvaluationMetrics(
        k=k,
        overall=period(start, end),
        weekly=weekly,
        mean_weekly_average_precision=mean([week.average_precision for week in counted]),
        mean_weekly_card_precision_at_k=mean([week.card_precision_at_k for week in counted]),
        mean_weekly_card_precision_at_k_detected=mean(
            [week.card_precision_at_k_detected for week in counted]
        ),
        attainable_card_precision_at_k=attainable,
        cards_per_day=cards_per_day,
        warnings=_warnings(weekly, k, cards_per_day, attainable),
    )


def _scenarios(frame: pd.DataFrame) -> pd.Series | None:
    if SCENARIO_COLUMN not in frame.columns:
        return None
    column = frame[SCENARIO_COLUMN]
    if column.isna().any() or ((column != 0) & ~frame["is_fraud"].astype(bool)).any():
        raise ValueError(
            f"column {SCENARIO_COLUMN!r} must name a scenario for every row, 0 for legitimate ones"
        )
    return column.astype("int64")


def _warnings(
    weekly: tuple[PeriodMetrics, ...], k: int, cards_per_day: float, attainable: float
) -> tuple[str, ...]:
    said = []
    for week in weekly:
        if week.partial:
            days = (week.end - week.start) / timedelta(days=1)
            said.append(
                f"the week of {week.start:%Y-%m-%d} holds only {days:g} days of the period: "
                "shown, but left out of the weekly means"
            )
    if k > K_SHARE_WARNING * cards_per_day:
        said.append(
            f"k = {k} is {k / cards_per_day:.1%} of the {cards_per_day:,.0f} cards active a "
            f"day: a budget that large flatters CP@k (a perfect scorer reaches "
            f"{attainable:.3f}); compare CP@k only between runs of the same k and data"
        )
    return tuple(said)
