"""The offline store's matured days as the metrics read them: what a what-if or a backtest is
taken over.

A transaction's label is final once the label delay has passed (a chargeback, or the implicit
legitimate label at maturity), so the window ends at the last midnight (UTC) one delay before
the store's latest label and reaches ``days`` whole days back from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from models.backtest import Backtest, Draft, backtest
from models.operating_points import (
    DEFAULT_BUDGETS,
    DEFAULT_THRESHOLDS,
    BudgetPoint,
    ThresholdPoint,
    budget_points,
    threshold_points,
)
from models.rules.ruleset import Rule
from pipelines.retrain.offline_store import ParquetOfflineStore, feature_columns


@dataclass(frozen=True)
class MaturedRows:
    frame: pd.DataFrame
    """``timestamp, card_id, terminal_id, score, is_fraud, label_known_at`` and the store's
    features, each under its own name: one row per transaction."""
    start: datetime
    end: datetime
    """Exclusive."""

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)


def matured_rows(
    store: ParquetOfflineStore,
    days: int,
    label_delay: timedelta,
    now: datetime | None = None,
    challenger: str | None = None,
) -> MaturedRows | None:
    """The last ``days`` matured days of ``store`` as of ``now`` (default: its latest label),
    each transaction with its latest label known by then; ``None`` for an empty store.

    The scores are the champion's as served, or with ``challenger`` that shadow challenger's,
    over the transactions it scored (it was not shadowing the others).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    now = now or store.latest_label_time()
    if now is None:
        return None
    end = pd.Timestamp(now - label_delay).floor("D").to_pydatetime()
    start = end - timedelta(days=days)
    rows = store.read(start, end, known_by=now)
    scores = rows["score"] if challenger is None else _shadow_scores(rows, challenger)
    if challenger is not None:
        rows, scores = rows.loc[scores.notna()], scores.dropna()
    frame = pd.DataFrame(
        {
            "timestamp": rows["event_time"],
            "card_id": rows["card_id"],
            "terminal_id": rows["terminal_id"],
            "score": scores,
            "is_fraud": rows["is_fraud"].astype(bool),
            "label_known_at": rows["label_time"],
        }
    )
    # A store opened without feature names (the what-if's) reads no feature column.
    features = rows[feature_columns(store.feature_names)].set_axis(
        list(store.feature_names), axis="columns"
    )
    frame = pd.concat([frame, features], axis="columns").reset_index(drop=True)
    return MaturedRows(frame, start, end)


def _shadow_scores(rows: pd.DataFrame, challenger: str) -> pd.Series[float]:
    """Each row's score by ``challenger`` (NaN where it did not shadow the transaction)."""
    return pd.Series(
        [
            next((score for name, score in pairs if name == challenger), None)
            if pairs is not None
            else None
            for pairs in rows["challenger_scores"]
        ],
        index=rows.index,
        dtype="float64",
    )


@dataclass(frozen=True)
class WhatIf:
    """Each threshold's and each card budget's figures over a store's matured days."""

    start: datetime
    end: datetime
    transactions: int
    frauds: int
    thresholds: list[ThresholdPoint]
    budgets: list[BudgetPoint]


def what_if(
    store: ParquetOfflineStore,
    days: int,
    label_delay: timedelta,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    challenger: str | None = None,
) -> WhatIf | None:
    """The operating points of the last ``days`` matured days (``None``: no label stored, or
    none the ``challenger`` scored), the champion's as served or a shadow challenger's."""
    matured = matured_rows(store, days, label_delay, challenger=challenger)
    if matured is None or matured.frame.empty:
        return None
    frame = matured.frame
    return WhatIf(
        start=matured.start,
        end=matured.end,
        transactions=len(frame),
        frauds=int(frame["is_fraud"].sum()),
        thresholds=threshold_points(frame, matured.days, sorted(thresholds)),
        budgets=budget_points(frame, sorted(budgets)),
    )


def backtest_store(
    store: ParquetOfflineStore,
    days: int,
    label_delay: timedelta,
    draft: Draft,
    threshold_in_force: float,
    rules_in_force: Sequence[Rule] = (),
) -> Backtest | None:
    """The draft against what the service decides today (the threshold and the rules in
    force) over the last ``days`` matured days of ``store``, opened with the feature names a
    rule reads (``None``: no label stored)."""
    matured = matured_rows(store, days, label_delay)
    if matured is None or matured.frame.empty:
        return None
    return backtest(
        matured.frame, matured.start, matured.end, draft, threshold_in_force, rules_in_force
    )
