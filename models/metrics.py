"""Fraud-evaluation metrics over scored transactions, as defined in ``EVALUATION.md``.

Every function reads one row per scored transaction with the columns ``timestamp``,
``card_id``, ``score``, ``is_fraud`` and ``label_known_at`` (both times tz-aware, UTC).
Days are UTC days. A card is *known compromised* on a day when one of its frauds had its label
revealed strictly before that day began; such cards take no slot in the day's alert budget,
because investigators have already blocked them.

Only the labels of rows in the frame count as knowledge; :func:`evaluate_scores` takes its
knowledge from the test period alone. The simulator keeps a card's id after a compromise where
a bank would reissue the card, so a history-wide rule would shut out nearly every card that ever
crossed a compromised terminal; bounding knowledge to the evaluated period measures what an
investigation team meets during it, as the handbook's protocol does.

For comparison with published figures, :func:`daily_card_precision_at_k_detected` applies the
handbook's own rule: a card leaves the ranking once it was *detected* (alerted and fraudulent)
on an earlier day of the period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from models.alerting import exceeds

REQUIRED_COLUMNS = ("timestamp", "card_id", "score", "is_fraud", "label_known_at")
"""Columns every metric needs; extra columns are ignored."""

_DAY = pd.Timedelta(days=1)
_WEEK = timedelta(days=7)


# --- transaction-level ranking metrics -------------------------------------------------------


def _as_arrays(
    y_true: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    labels = np.asarray(y_true, dtype=bool)
    values = np.asarray(scores, dtype=float)
    if labels.shape != values.shape:
        raise ValueError(f"y_true has shape {labels.shape} but scores has {values.shape}")
    return labels, values


def average_precision(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the precision-recall curve; ``nan`` when only one class is present.

    With a single class the figure is undefined, and sklearn would warn and return 0 or 1.

    Examples
    --------
    >>> average_precision([False, True, False, True], [0.1, 0.9, 0.4, 0.35])
    0.8333333333333333
    >>> average_precision([False, False], [0.1, 0.9])
    nan
    """
    labels, values = _as_arrays(y_true, scores)
    if labels.all() or not labels.any():
        return math.nan
    return float(average_precision_score(labels, values))


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve; ``nan`` when only one class is present.

    Examples
    --------
    >>> roc_auc([False, True, False, True], [0.1, 0.9, 0.4, 0.35])
    0.75
    >>> roc_auc([True, True], [0.1, 0.9])
    nan
    """
    labels, values = _as_arrays(y_true, scores)
    if labels.all() or not labels.any():
        return math.nan
    return float(roc_auc_score(labels, values))


def scenario_average_precisions(scenario: npt.ArrayLike, scores: npt.ArrayLike) -> dict[int, float]:
    """AP of each fraud scenario: its frauds ranked among the legitimate rows (scenario 0).

    A weak score on a rare scenario hides in the overall AP; per scenario it shows, and so does
    a scenario forgotten after a new one is learned.

    Examples
    --------
    >>> scenario_average_precisions([0, 1, 0, 2, 0], [0.1, 0.9, 0.5, 0.4, 0.2])
    {1: 1.0, 2: 0.5}
    """
    kinds = np.asarray(scenario, dtype=np.int64)
    values = np.asarray(scores, dtype=float)
    legitimate = kinds == 0
    return {
        int(kind): average_precision(
            kinds[legitimate | (kinds == kind)] == kind, values[legitimate | (kinds == kind)]
        )
        for kind in np.unique(kinds[~legitimate])
    }


def attainable_card_precision(card_days: pd.DataFrame, k: int) -> float:
    """The best CP@k any scorer could reach: each day, the compromised eligible cards over k
    (at most 1). Below 1 when there are fewer compromised cards a day than the budget."""
    eligible = card_days.loc[card_days["eligible"]]
    compromised = (eligible["frauds"] > 0).groupby(eligible["day"]).sum()
    return float(np.minimum(compromised / k, 1.0).mean()) if len(compromised) else math.nan


# --- input checks -----------------------------------------------------------------------------


def _utc_column(frame: pd.DataFrame, name: str) -> pd.Series:
    column = frame[name]
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"column {name!r} must be tz-aware datetimes, got {column.dtype}")
    return pd.to_datetime(column, utc=True)


def checked(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with only the required columns, times in UTC and ``is_fraud`` as bool."""
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing required columns: {', '.join(missing)}")
    is_fraud = frame["is_fraud"]
    if is_fraud.dtype != bool and not is_fraud.isin([0, 1]).all():
        raise ValueError("column 'is_fraud' must hold booleans (or 0/1) without missing values")
    if frame["card_id"].isna().any():
        raise ValueError("column 'card_id' holds missing values; every row needs a card")
    score = frame["score"].astype(float)
    if score.isna().any():
        raise ValueError("column 'score' holds missing values, which cannot be ranked")
    return pd.DataFrame(
        {
            "timestamp": _utc_column(frame, "timestamp"),
            "card_id": frame["card_id"],
            "score": score,
            "is_fraud": is_fraud.astype(bool),
            "label_known_at": _utc_column(frame, "label_known_at"),
        },
        index=frame.index,
    )


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


# --- card-days and the daily alert budget ------------------------------------------------------


def first_known_fraud(rows: pd.DataFrame) -> pd.Series:
    """When each card became known compromised: the earliest revealed label of its frauds."""
    frauds = rows.loc[rows["is_fraud"], ["card_id", "label_known_at"]]
    return frauds.groupby("card_id")["label_known_at"].min()


def rank_card_days(rows: pd.DataFrame, first_known: pd.Series, k: int) -> pd.DataFrame:
    """One row per (day, card) with its max score, fraud count and whether it was alerted.

    The top ``k`` eligible cards of each day are flagged. Ties on the max score are broken by
    ``card_id`` so the result does not depend on row order.
    """
    day = rows["timestamp"].dt.floor("D").rename("day")
    card_days = (
        rows.groupby([day, rows["card_id"]], sort=False)
        .agg(max_score=("score", "max"), frauds=("is_fraud", "sum"))
        .reset_index()
    )
    known_since = first_known.reindex(card_days["card_id"]).reset_index(drop=True)
    # NaT (never known) compares False, so such cards stay eligible.
    card_days["eligible"] = ~(known_since < card_days["day"])
    ranked = card_days.loc[card_days["eligible"]].sort_values(
        ["day", "max_score", "card_id"], ascending=[True, False, True]
    )
    rank = ranked.groupby("day").cumcount()
    card_days["flagged"] = False
    card_days.loc[rank.index[rank < k], "flagged"] = True
    return card_days


def _daily_hits(card_days: pd.DataFrame, k: int) -> pd.Series:
    hits = card_days["flagged"] & (card_days["frauds"] > 0)
    daily = hits.groupby(card_days["day"]).sum() / k
    return daily.rename("card_precision_at_k").rename_axis("day")


def detected_rule_precisions(rows: pd.DataFrame, k: int) -> pd.Series:
    """Daily CP@k where cards alerted and fraudulent on earlier days leave the ranking."""
    day = rows["timestamp"].dt.floor("D").rename("day")
    card_days = (
        rows.groupby([day, rows["card_id"]], sort=True)
        .agg(max_score=("score", "max"), frauds=("is_fraud", "sum"))
        .reset_index()
    )
    detected: set[object] = set()
    daily: dict[pd.Timestamp, float] = {}
    # Sequential by nature: each day's exclusions depend on the days before it.
    for when, cards in card_days.groupby("day", sort=True):
        assert isinstance(when, pd.Timestamp)
        eligible = cards.loc[~cards["card_id"].isin(detected)]
        top = eligible.sort_values(["max_score", "card_id"], ascending=[False, True]).head(k)
        hits = top.loc[top["frauds"] > 0, "card_id"]
        daily[when] = len(hits) / k
        detected.update(hits)
    return pd.Series(daily, name="card_precision_at_k_detected", dtype=float).rename_axis("day")


def daily_card_precision_at_k_detected(frame: pd.DataFrame, k: int = 100) -> pd.Series:
    """Card Precision@k of each UTC day under the handbook's rule for known cards.

    A card leaves the ranking once it was detected, i.e. in an earlier day's top ``k`` with a
    fraud that day, whatever the labels say; use it to compare with published figures.

    Examples
    --------
    Card ``a`` is detected on day one, so day two ranks ``b`` and ``c`` only.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> d = pd.Timedelta(days=1)
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t, t + d, t + d, t + d],
    ...     "card_id": ["a", "b", "a", "b", "c"],
    ...     "score": [0.9, 0.1, 0.9, 0.5, 0.4],
    ...     "is_fraud": [True, False, True, False, True],
    ...     "label_known_at": [t + 7 * d] * 5,
    ... })
    >>> daily_card_precision_at_k_detected(frame, k=2).tolist()
    [0.5, 0.5]
    """
    check_k(k)
    return detected_rule_precisions(checked(frame), k)


def _budget_card_days(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    check_k(k)
    rows = checked(frame)
    return rank_card_days(rows, first_known_fraud(rows), k)


def daily_card_precision_at_k(frame: pd.DataFrame, k: int = 100) -> pd.Series:
    """Card Precision@k of each UTC day, indexed by the day's midnight.

    The count of compromised cards among the day's top ``k`` is divided by ``k`` even when
    fewer than ``k`` cards were eligible, as the Fraud Detection Handbook does: the team's
    capacity is ``k`` and a short list wastes it.

    Examples
    --------
    Card ``a`` is ranked by its best score (0.9); card ``c`` has the top score but its fraud was
    already known before the day, so ``a`` and ``b`` fill the budget of two.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t, t, t],
    ...     "card_id": ["a", "a", "b", "c"],
    ...     "score": [0.2, 0.9, 0.5, 0.95],
    ...     "is_fraud": [False, True, False, True],
    ...     "label_known_at": [t, t, t, t - pd.Timedelta(days=3)],
    ... })
    >>> daily_card_precision_at_k(frame, k=2).to_dict()
    {Timestamp('2018-08-08 00:00:00+0000', tz='UTC'): 0.5}
    """
    return _daily_hits(_budget_card_days(frame, k), k)


def card_precision_at_k(frame: pd.DataFrame, k: int = 100) -> float:
    """Mean over days of :func:`daily_card_precision_at_k`; ``nan`` for an empty frame.

    Examples
    --------
    Day one alerts the fraudulent card ``a`` (1/2); on day two ``a`` is known compromised,
    so only the honest card ``b`` is alerted (0/2).

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t + pd.Timedelta(days=1), t + pd.Timedelta(days=1)],
    ...     "card_id": ["a", "a", "b"],
    ...     "score": [0.9, 0.8, 0.1],
    ...     "is_fraud": [True, True, False],
    ...     "label_known_at": [t + pd.Timedelta(hours=1)] * 3,
    ... })
    >>> card_precision_at_k(frame, k=2)
    0.25
    """
    return mean(daily_card_precisions(_budget_card_days(frame, k), k))


def daily_card_precisions(card_days: pd.DataFrame, k: int) -> list[float]:
    return [float(value) for value in _daily_hits(card_days, k)]


def mean(values: Sequence[float]) -> float:
    """Mean of the defined values; ``nan`` if none (without numpy's empty-slice warning)."""
    defined = [value for value in values if not math.isnan(value)]
    return math.fsum(defined) / len(defined) if defined else math.nan


# --- alerting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetRecall:
    """What share of the fraud an alert budget of ``k`` cards a day catches."""

    transaction_recall: float
    """Share of fraudulent transactions that belong to a flagged card-day."""
    card_recall: float
    """Share of compromised card-days (>= 1 fraud) that were flagged."""


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def budget_recall(card_days: pd.DataFrame) -> BudgetRecall:
    # Known-compromised cards stay in both denominators: their frauds happened and were missed.
    compromised = card_days["frauds"] > 0
    caught = card_days["flagged"] & compromised
    return BudgetRecall(
        transaction_recall=_ratio(
            float(card_days.loc[caught, "frauds"].sum()), float(card_days["frauds"].sum())
        ),
        card_recall=_ratio(float(caught.sum()), float(compromised.sum())),
    )


def flagged_precision(card_days: pd.DataFrame) -> float:
    flagged = card_days["flagged"]
    hits = flagged & (card_days["frauds"] > 0)
    return _ratio(float(hits.sum()), float(flagged.sum()))


def recall_at_budget(frame: pd.DataFrame, k: int = 100) -> BudgetRecall:
    """Recall of the daily top-``k`` card alerts (the selection of :func:`card_precision_at_k`).

    Examples
    --------
    Card ``a`` (two frauds) is alerted, card ``b`` (one fraud) is not: 2 of 3 frauds and
    1 of 2 compromised card-days are caught.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t, t],
    ...     "card_id": ["a", "a", "b"],
    ...     "score": [0.9, 0.3, 0.2],
    ...     "is_fraud": [True, True, True],
    ...     "label_known_at": [t, t, t],
    ... })
    >>> recall_at_budget(frame, k=1)
    BudgetRecall(transaction_recall=0.6666666666666666, card_recall=0.5)
    """
    return budget_recall(_budget_card_days(frame, k))


def alert_precision(frame: pd.DataFrame, k: int = 100) -> float:
    """Share of flagged card-days that had a fraud.

    Unlike Card Precision@k this divides by the cards actually flagged, so a short list on a
    quiet day is not penalised.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t],
    ...     "card_id": ["a", "b"],
    ...     "score": [0.9, 0.2],
    ...     "is_fraud": [True, False],
    ...     "label_known_at": [t, t],
    ... })
    >>> alert_precision(frame, k=100)
    0.5
    """
    return flagged_precision(_budget_card_days(frame, k))


@dataclass(frozen=True)
class ThresholdAlerts:
    """Transaction alerts raised by scores strictly above a threshold, as the service does."""

    precision: float
    recall: float
    alerts: int


def threshold_alert_metrics(frame: pd.DataFrame, threshold: float) -> ThresholdAlerts:
    """Precision and recall of alerting every transaction scored above ``threshold``, as the
    service would (`models.alerting.exceeds`).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> frame = pd.DataFrame({
    ...     "timestamp": [t, t, t],
    ...     "card_id": ["a", "b", "c"],
    ...     "score": [0.9, 0.6, 0.2],
    ...     "is_fraud": [True, False, True],
    ...     "label_known_at": [t, t, t],
    ... })
    >>> threshold_alert_metrics(frame, 0.5)
    ThresholdAlerts(precision=0.5, recall=0.5, alerts=2)
    """
    rows = checked(frame)
    alerted = exceeds(rows["score"], threshold)
    hits = int((alerted & rows["is_fraud"]).sum())
    alerts = int(alerted.sum())
    return ThresholdAlerts(
        precision=_ratio(hits, alerts),
        recall=_ratio(hits, int(rows["is_fraud"].sum())),
        alerts=alerts,
    )
