"""Backtest of a draft rule or alert threshold: what it would have changed over labelled days,
beside the model alone at the threshold in force, so that a team enables it knowing the cost.

The rows are those of `models.metrics` (``timestamp``, ``card_id``, ``score``, ``is_fraud``,
``label_known_at``), with the fields a rule reads: ``terminal_id`` and one column per feature,
as the offline store keeps them. The baseline is the service as it decides today: every score
strictly above the threshold in force (`models.alerting.exceeds`), then the enabled rules in
force, which decide as when scoring (allow beats alert beats review, then their order). With
the draft:

- a threshold alerts every score above it instead, the rules in force still deciding;
- a rule joins the rules in force, last: an ``alert`` rule adds its matches to the alerts, an
  ``allow`` rule removes them (even from an alert rule in force);
- a ``review`` rule adds its matches too: a review puts the transaction before an investigator,
  so it costs the team's time and catches a fraud as an alert does. The legitimate cards it
  brings count as bothered, an upper bound (an investigator may clear one without a call).

The figures follow the what-if's (`models.operating_points`): precision and recall are per
transaction; the card figures are per card-day (a card alerted on a day when any of its
transactions that day is; compromised when any is a fraud); legitimate cards bothered a day
count each card with an alerted legitimate transaction once a day. What the draft changes is
counted in frauds (transactions, and distinct cards with one caught) it adds or loses, and in
distinct legitimate cards it would bother, or spare, that the model alone would not, or would.
All before the per-card alert cooldown, which would only remove repeats of a card alerted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

import numpy as np
import pandas as pd

from models.alerting import exceeds
from models.metrics import checked
from models.rules.conditions import Mask, column_mask, fields_of
from models.rules.grammar import TEXT_FIELDS, RuleAction, RuleFields, RuleSyntaxError
from models.rules.ruleset import Rule, column_decisions

STORED_TEXT_FIELDS = frozenset({"card_id", "terminal_id"})
"""The transaction fields the offline store keeps beside the feature vector."""
UNSTORED_FIELDS = frozenset(TEXT_FIELDS) - STORED_TEXT_FIELDS
"""Fields a rule may read when scoring that no stored row holds: no honest backtest of them."""
DRAFT_NAME = "draft"

Draft: TypeAlias = Rule | float
"""A rule to add beside the model, or an alert threshold to use instead of the one in force."""


def draft_rule(text: str, feature_names: Sequence[str]) -> Rule:
    """``text`` parsed as a rule over the stored rows, or `RuleSyntaxError` saying why not
    (including a field the offline store does not keep)."""
    rule = Rule.parse(DRAFT_NAME, text, RuleFields.of_features(tuple(feature_names)))
    unstored = sorted(fields_of(rule.condition) & UNSTORED_FIELDS)
    if unstored:
        names = ", ".join(repr(name) for name in unstored)
        raise RuleSyntaxError(
            f"the offline store does not keep {names}: a rule reading it cannot be backtested "
            f"(it may read {', '.join(sorted(STORED_TEXT_FIELDS))} and the features)"
        )
    return rule


@dataclass(frozen=True)
class Figures:
    """What one way of alerting gave over a period."""

    alerts: int
    alerts_per_day: float
    precision: float
    """Share of the alerted transactions that were fraud (NaN: none alerted)."""
    recall: float
    """Share of the fraud transactions that were alerted (NaN: no fraud)."""
    card_precision: float
    """Share of the alerted card-days with a fraud that day."""
    card_recall: float
    """Share of the compromised card-days that were alerted."""
    legitimate_cards_bothered_per_day: float
    """Cards with a legitimate transaction alerted, each counted once a day."""


@dataclass(frozen=True)
class Change:
    """What the draft changes against the model alone over a period."""

    frauds_added: int
    """Fraud transactions alerted with the draft and not by the model alone."""
    frauds_lost: int
    """Fraud transactions the model alone alerted and the draft no longer does."""
    fraud_cards_added: int
    """Distinct cards with a fraud caught only with the draft (none caught by the model)."""
    fraud_cards_lost: int
    """Distinct cards with a fraud caught by the model alone and none with the draft."""
    legitimate_cards_bothered: int
    """Distinct cards with a legitimate transaction alerted with the draft, none by the model."""
    legitimate_cards_spared: int
    """Distinct cards with a legitimate transaction alerted by the model, none with the draft."""


@dataclass(frozen=True)
class Period:
    start: datetime
    days: float
    transactions: int
    frauds: int
    model: Figures
    """The model at the threshold in force, with the rules in force."""
    with_draft: Figures
    """The model with the draft rule, or at the draft threshold."""
    change: Change


@dataclass(frozen=True)
class Backtest:
    threshold_in_force: float
    rules_in_force: tuple[str, ...]
    """The enabled rules the baseline applied, in the set's order."""
    rules_not_stored: tuple[str, ...]
    """Enabled rules left out: they read a field the store does not keep."""
    matched: int | None
    """Transactions the draft rule's condition matches (None: a draft threshold)."""
    overall: Period
    daily: tuple[Period, ...]
    """One period per UTC day of the window, a day without rows included."""


def ruled(rules: Sequence[Rule], rows: pd.DataFrame, scored: Mask) -> Mask:
    """Which of ``rows`` alert once ``rules`` decide beside the ``scored`` alerts, as scoring
    decides (a review counts as an alert here)."""
    alerted = scored.copy()
    for rule, decided in column_decisions(rules, rows):
        alerted[decided] = rule.action is not RuleAction.ALLOW
    return alerted


def stored_rules(rules: Sequence[Rule]) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    """The enabled rules a backtest can apply, and the names of those reading a field the
    store does not keep (applied, they would never match: better left out and named)."""
    enabled = [rule for rule in rules if rule.enabled]
    kept = tuple(rule for rule in enabled if not fields_of(rule.condition) & UNSTORED_FIELDS)
    return kept, tuple(rule.name for rule in enabled if rule not in kept)


def alerted_with(
    draft: Draft, rows: pd.DataFrame, in_force: Sequence[Rule], threshold_in_force: float
) -> tuple[Mask, Mask]:
    """Which of ``rows`` alert today (the threshold in force and the rules ``in_force``), and
    which with the draft."""
    scores = rows["score"]
    scored: Mask = exceeds(scores, threshold_in_force).to_numpy(dtype=bool)
    today = ruled(in_force, rows, scored)
    if isinstance(draft, Rule):
        return today, ruled((*in_force, draft), rows, scored)
    return today, ruled(in_force, rows, exceeds(scores, draft).to_numpy(dtype=bool))


def backtest(
    frame: pd.DataFrame,
    start: datetime,
    end: datetime,
    draft: Draft,
    threshold_in_force: float,
    rules_in_force: Sequence[Rule] = (),
) -> Backtest:
    """The draft against what the service decides today over ``frame``, the rows of
    ``[start, end)``: the threshold in force and the enabled ``rules_in_force``.

    Examples
    --------
    >>> t = pd.Timestamp("2018-08-01 12:00", tz="UTC")
    >>> frame = pd.DataFrame({"timestamp": [t] * 4, "card_id": ["a", "b", "b", "c"],
    ...                       "score": [0.9, 0.7, 0.2, 0.3], "amount": [5.0, 80.0, 900.0, 2e3],
    ...                       "is_fraud": [True, False, False, True], "label_known_at": [t] * 4})
    >>> rule = draft_rule("amount > 1000 -> alert", ["amount"])
    >>> day = t.floor("D").to_pydatetime()
    >>> found = backtest(frame, day, day + timedelta(days=1), rule, 0.5)
    >>> found.overall.model.recall, found.overall.with_draft.recall
    (0.5, 1.0)
    >>> found.overall.change.frauds_added, found.overall.change.legitimate_cards_bothered
    (1, 0)
    """
    if not end > start:
        raise ValueError(f"the window must end after it starts, got {start} to {end}")
    rows = checked(frame)
    in_force, not_stored = stored_rules(rules_in_force)
    model, with_draft = alerted_with(draft, frame, in_force, threshold_in_force)
    day = rows["timestamp"].dt.floor("D")
    days = pd.date_range(pd.Timestamp(start).floor("D"), end, freq="D", inclusive="left")
    daily = []
    for moment in days:
        today = (day == moment).to_numpy()
        daily.append(
            _period(rows.loc[today], model[today], with_draft[today], moment.to_pydatetime(), 1)
        )
    return Backtest(
        threshold_in_force=threshold_in_force,
        rules_in_force=tuple(rule.name for rule in in_force),
        rules_not_stored=not_stored,
        matched=int(column_mask(draft.condition, frame).sum()) if isinstance(draft, Rule) else None,
        overall=_period(rows, model, with_draft, start, (end - start) / timedelta(days=1)),
        daily=tuple(daily),
    )


def _period(
    rows: pd.DataFrame, model: Mask, with_draft: Mask, start: datetime, days: float
) -> Period:
    fraud = rows["is_fraud"].to_numpy(dtype=bool)
    cards = rows["card_id"].to_numpy()
    return Period(
        start=start,
        days=days,
        transactions=len(rows),
        frauds=int(fraud.sum()),
        model=_figures(rows, model, days),
        with_draft=_figures(rows, with_draft, days),
        change=Change(
            frauds_added=int((fraud & with_draft & ~model).sum()),
            frauds_lost=int((fraud & model & ~with_draft).sum()),
            fraud_cards_added=_newly(cards, fraud & with_draft, fraud & model),
            fraud_cards_lost=_newly(cards, fraud & model, fraud & with_draft),
            legitimate_cards_bothered=_newly(cards, ~fraud & with_draft, ~fraud & model),
            legitimate_cards_spared=_newly(cards, ~fraud & model, ~fraud & with_draft),
        ),
    )


def _figures(rows: pd.DataFrame, alerted: Mask, days: float) -> Figures:
    fraud = rows["is_fraud"].to_numpy(dtype=bool)
    card_days = (
        pd.DataFrame(
            {"alerted": alerted, "fraud": fraud, "bothering": alerted & ~fraud}, index=rows.index
        )
        .groupby([rows["timestamp"].dt.floor("D"), rows["card_id"]])
        .any()
    )
    hits = card_days["alerted"] & card_days["fraud"]
    return Figures(
        alerts=int(alerted.sum()),
        alerts_per_day=float(alerted.sum()) / days,
        precision=_ratio((alerted & fraud).sum(), alerted.sum()),
        recall=_ratio((alerted & fraud).sum(), fraud.sum()),
        card_precision=_ratio(hits.sum(), card_days["alerted"].sum()),
        card_recall=_ratio(hits.sum(), card_days["fraud"].sum()),
        legitimate_cards_bothered_per_day=float(card_days["bothering"].sum()) / days,
    )


def _newly(cards: np.ndarray, now: Mask, before: Mask) -> int:
    """Distinct cards with a row in ``now`` and none in ``before``."""
    return len(set(cards[now]) - set(cards[before]))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan
