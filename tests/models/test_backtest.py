"""A draft rule or threshold against the model alone, on rows small enough to count by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.backtest import UNSTORED_FIELDS, Backtest, backtest, draft_rule
from models.rules.grammar import RuleFields, RuleSyntaxError
from models.rules.ruleset import Rule
from tests.models.scored_frames import MOMENT, scored_at_one_moment

DAY = datetime(2018, 8, 1, tzinfo=UTC)
FEATURES = ("amount", "card_terminal_first_use")


def _rows() -> pd.DataFrame:
    """Two days: card a is compromised on day one, b and c are legitimate, d is both."""
    t1, t2 = pd.Timestamp(DAY) + pd.Timedelta(hours=12), pd.Timestamp(DAY) + pd.Timedelta(hours=36)
    return pd.DataFrame(
        {
            "timestamp": [t1, t1, t1, t1, t2, t2, t2],
            "card_id": ["a", "a", "b", "c", "b", "d", "d"],
            "terminal_id": ["T1", "T2", "T1", "T3", "T2", "T3", "T3"],
            "score": [0.9, 0.2, 0.7, 0.1, 0.6, 0.3, 0.8],
            "is_fraud": [True, True, False, False, False, True, False],
            "label_known_at": [t2 + pd.Timedelta(days=7)] * 7,
            "amount": [50.0, 1500.0, 20.0, 2000.0, 10.0, 1200.0, 5.0],
            "card_terminal_first_use": [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, math.nan],
        }
    )


def _run(draft: str | float, days: int = 2) -> Backtest:
    parsed = draft_rule(draft, FEATURES) if isinstance(draft, str) else draft
    return backtest(_rows(), DAY, DAY + timedelta(days=days), parsed, 0.5)


def test_the_model_alone_is_the_what_ifs_figures_at_the_threshold_in_force() -> None:
    found = _run("amount > 1e9 -> alert")
    model = found.overall.model
    # Alerted: a (fraud), b twice (legitimate), d's legitimate one.
    assert (model.alerts, model.alerts_per_day) == (4, 2.0)
    assert (model.precision, model.recall) == (1 / 4, 1 / 3)
    # Card-days alerted: (1, a) hit, (1, b), (2, b), (2, d) hit; compromised: (1, a), (2, d).
    assert (model.card_precision, model.card_recall) == (2 / 4, 2 / 2)
    assert model.legitimate_cards_bothered_per_day == 3 / 2  # (1, b), (2, b), (2, d)
    assert found.overall.with_draft == model
    assert found.matched == 0


@pytest.mark.parametrize("action", ["alert", "review"])
def test_an_alert_or_review_rule_adds_its_matches_to_the_models_alerts(action: str) -> None:
    found = _run(f"amount > 1000 -> {action}")
    overall = found.overall
    assert found.matched == 3
    assert overall.with_draft.alerts == 7  # every row: the three matches are all unalerted
    change = overall.change
    assert (change.frauds_added, change.frauds_lost) == (2, 0)  # a's 1500 and d's 1200
    # a had a fraud alerted by the model already; d had none.
    assert (change.fraud_cards_added, change.fraud_cards_lost) == (1, 0)
    assert (change.legitimate_cards_bothered, change.legitimate_cards_spared) == (1, 0)  # c
    assert overall.with_draft.recall == 1.0


def test_an_allow_rule_removes_its_matches_and_counts_what_is_lost_and_spared() -> None:
    found = _run('terminal_id == "T3" or card_id == "b" -> allow')
    overall = found.overall
    assert overall.with_draft.alerts == 1  # a's 0.9 only
    change = overall.change
    assert (change.frauds_added, change.frauds_lost) == (0, 0)
    assert (change.legitimate_cards_bothered, change.legitimate_cards_spared) == (0, 2)  # b, d
    assert overall.with_draft.legitimate_cards_bothered_per_day == 0


def test_a_draft_threshold_replaces_the_one_in_force() -> None:
    found = _run(0.25)
    overall = found.overall
    assert found.matched is None
    assert overall.with_draft.alerts == 5
    assert (overall.change.frauds_added, overall.change.fraud_cards_added) == (1, 1)  # d
    lowered = _run(0.95).overall
    assert (lowered.change.frauds_lost, lowered.change.fraud_cards_lost) == (1, 1)  # a
    assert lowered.change.legitimate_cards_spared == 2
    assert math.isnan(lowered.with_draft.precision)


def test_each_day_has_its_figures_and_a_day_without_rows_is_kept() -> None:
    found = _run("card_terminal_first_use == 1 -> alert", days=3)
    first, second, third = found.daily
    assert [day.start for day in found.daily] == [DAY + timedelta(days=n) for n in range(3)]
    assert (first.transactions, second.transactions, third.transactions) == (4, 3, 0)
    assert (first.change.frauds_added, first.change.legitimate_cards_bothered) == (1, 1)
    # A missing feature (d's last row) matches nothing: day two is the model's alone.
    assert second.with_draft == second.model
    assert third.model.alerts == 0
    assert math.isnan(third.model.recall)
    assert found.overall.days == 3


@pytest.mark.parametrize("field", sorted(UNSTORED_FIELDS))
def test_a_rule_reading_a_field_the_store_does_not_keep_is_refused_naming_it(
    field: str,
) -> None:
    with pytest.raises(RuleSyntaxError, match=f"does not keep '{field}'"):
        draft_rule(f'amount > 1 and not {field} == "x" -> alert', FEATURES)


def test_a_rule_that_does_not_parse_says_where() -> None:
    with pytest.raises(RuleSyntaxError, match="unknown field 'velocity'"):
        draft_rule("velocity > 3 -> alert", FEATURES)
    with pytest.raises(RuleSyntaxError, match="ends early"):
        draft_rule("amount > 3", FEATURES)


def test_rules_in_force_decide_with_the_draft_last_and_allow_first() -> None:
    t = pd.Timestamp("2018-08-01 12:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "timestamp": [t] * 4,
            "card_id": ["a", "b", "c", "d"],
            "score": [0.9, 0.1, 0.1, 0.9],
            "amount": [5.0, 2_000.0, 20.0, 3_000.0],
            "is_fraud": [True, True, False, False],
            "label_known_at": [t] * 4,
        }
    )
    fields = RuleFields.of_features(("amount",))
    in_force = [
        Rule.parse("large", "amount > 1000 -> alert", fields),
        Rule.parse("abroad", 'country == "RU" -> alert', fields),
    ]
    day = t.floor("D").to_pydatetime()
    found = backtest(
        frame,
        day,
        day + timedelta(days=1),
        draft_rule("amount > 2500 -> allow", ["amount"]),
        0.5,
        in_force,
    )
    # Today: a (score), b and d (the alert rule); with the draft, d is allowed.
    assert found.overall.model.alerts == 3
    assert found.overall.with_draft.alerts == 2
    assert found.overall.change.legitimate_cards_spared == 1
    assert (found.rules_in_force, found.rules_not_stored) == (("large",), ("abroad",))


def test_a_score_equal_to_the_threshold_alerts_neither_in_the_backtest_nor_in_the_service() -> None:
    frame = scored_at_one_moment([0.5, 0.3, 0.9], [True, True, False])
    day = MOMENT.floor("D").to_pydatetime()
    found = backtest(frame, day, day + timedelta(days=1), 0.3, 0.5)
    policy = AlertPolicy(AlertPolicyConfig(threshold=0.5))
    service = [
        policy.decide(card, score, 0)
        for card, score in frame[["card_id", "score"]].itertuples(index=False)
    ]
    assert service == [False, False, True]
    # The model alone alerts c only, as the service; at 0.3, a's 0.5 but not b's 0.3.
    assert found.overall.model.alerts == sum(service) == 1
    assert found.overall.with_draft.alerts == 2
    assert (found.overall.change.frauds_added, found.overall.with_draft.recall) == (1, 0.5)
