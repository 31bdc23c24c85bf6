"""The detector's rules beside the model: what each action does to the decision, the cooldown
and the reasons, with in-memory parts."""

from __future__ import annotations

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import FraudDetector
from models.explain import ReasonCode
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.rules.ruleset import Rule, RuleSet
from models.schemas import Decision
from tests.builders import make_tx

FRESH_SCORE = 0.5
"""What a logistic learner that has learned nothing scores: its prior."""


def detector(threshold: float, *rules: tuple[str, str], version: int = 3) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    made = FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        OnlineLearner("logistic"),
        alerting=AlertPolicy(AlertPolicyConfig(threshold=threshold, cooldown_seconds=3600)),
    )
    fields = made.rule_fields()
    made.apply_rules(RuleSet(tuple(Rule.parse(n, t, fields) for n, t in rules), version))
    return made


def test_an_alert_rule_alerts_below_the_threshold_and_names_itself_first() -> None:
    scoring = detector(0.9, ("big", "amount > 100 -> alert"))
    scored = scoring.score(make_tx(1, amount=500.0))
    assert scored.score == FRESH_SCORE
    assert scored.decision is Decision.ALERT
    assert scored.reasons[0] == ReasonCode("rule:big", 3.0, 0.0)
    assert all(not r.feature.startswith("rule:") for r in scored.reasons[1:])
    assert scoring.rule_decisions == {("big", "alert"): 1}
    # A transaction no rule matches is the model's alone, with the model's reasons only.
    small = scoring.score(make_tx(2, amount=5.0, card="c2"))
    assert small.decision is Decision.PASS
    assert not any(r.feature.startswith("rule:") for r in small.reasons)


def test_an_alert_rule_still_honours_the_cards_cooldown() -> None:
    scoring = detector(0.9, ("big", "amount > 100 -> alert"))
    assert scoring.score(make_tx(1, amount=500.0)).decision is Decision.ALERT
    again = scoring.score(make_tx(2, amount=500.0, hours=0.5))
    assert again.decision is Decision.PASS
    assert again.reasons[0].feature == "rule:big"
    assert scoring.score(make_tx(3, amount=500.0, hours=1.5)).decision is Decision.ALERT


def test_an_alert_rule_on_a_score_that_alerts_anyway_still_names_the_rule() -> None:
    scored = detector(0.4, ("big", "amount > 100 -> alert")).score(make_tx(1, amount=500.0))
    assert scored.decision is Decision.ALERT
    assert scored.reasons[0].feature == "rule:big"


def test_allow_suppresses_the_models_alert_and_marks_no_cooldown() -> None:
    scoring = detector(0.4, ("house", 'terminal_id == "p1" -> allow'))
    allowed = scoring.score(make_tx(1))
    assert allowed.decision is Decision.PASS
    assert allowed.reasons[0] == ReasonCode("rule:house", 3.0, 0.0)
    assert scoring.alerting.book.last("c1") is None
    # The same card at another terminal alerts at once: the allowed one left no cooldown.
    assert scoring.score(make_tx(2, terminal="p2", hours=0.1)).decision is Decision.ALERT


def test_review_unless_the_model_alerts_anyway() -> None:
    rule = ("night", 'currency == "EUR" -> review')
    reviewed = detector(0.9, rule).score(make_tx(1))
    assert reviewed.decision is Decision.REVIEW
    assert reviewed.reasons[0].feature == "rule:night"
    alerted = detector(0.4, rule).score(make_tx(1))
    assert alerted.decision is Decision.ALERT
    assert alerted.reasons[0].feature == "rule:night"


def test_allow_beats_alert_and_a_disabled_set_changes_nothing() -> None:
    scoring = detector(
        0.9, ("big", "amount > 100 -> alert"), ("house", 'terminal_id == "p1" -> allow')
    )
    assert scoring.score(make_tx(1, amount=500.0)).decision is Decision.PASS
    assert scoring.rule_decisions == {("house", "allow"): 1}
    fields = scoring.rule_fields()
    scoring.apply_rules(
        RuleSet((Rule.parse("big", "amount > 100 -> alert", fields, enabled=False),))
    )
    plain = scoring.score(make_tx(2, amount=500.0, card="c2"))
    assert plain.decision is Decision.PASS
    assert not any(r.feature.startswith("rule:") for r in plain.reasons)


def test_a_replay_keeps_its_first_answer_after_the_rules_change() -> None:
    scoring = detector(0.9, ("big", "amount > 100 -> alert"))
    first = scoring.score(make_tx(1, amount=500.0))
    scoring.apply_rules(RuleSet())
    again = scoring.score(make_tx(1, amount=500.0))
    assert again.replayed
    assert (again.decision, again.reasons) == (first.decision, first.reasons)


def test_a_text_field_the_transaction_lacks_matches_no_comparison() -> None:
    scoring = detector(0.9, ("foreign", 'country != "FR" -> alert'))
    assert scoring.score(make_tx(1)).decision is Decision.PASS
