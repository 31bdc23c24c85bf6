import pandas as pd
import pytest

from models.rules.grammar import RuleAction, RuleFields, RuleSyntaxError
from models.rules.ruleset import MAX_RULES, Rule, RuleMatch, RuleSet, column_decisions

FIELDS = RuleFields.of_features(("amount", "card_terminal_first_use", "is_night"))


def rule(name: str, text: str, *, enabled: bool = True) -> Rule:
    return Rule.parse(name, text, FIELDS, enabled=enabled)


RULES = RuleSet(
    (
        rule("big-first-use", "amount > 1000 and card_terminal_first_use == 1 -> review"),
        rule("night-small", "is_night == 1 and amount < 2 -> alert"),
        rule("any-night", "is_night == 1 -> review"),
        rule("house-terminal", 'terminal_id == "T1" -> allow'),
        rule("draft", "amount > 0 -> alert", enabled=False),
    ),
    version=7,
)


def test_allow_beats_alert_beats_review_and_order_breaks_ties() -> None:
    row = {"amount": 1.0, "is_night": 1.0, "terminal_id": "T1", "card_terminal_first_use": 1.0}
    assert RULES.decide(row) == RuleMatch("house-terminal", RuleAction.ALLOW, 7)
    assert RULES.decide({**row, "terminal_id": "T2"}) == RuleMatch(
        "night-small", RuleAction.ALERT, 7
    )
    assert RULES.decide({**row, "terminal_id": "T2", "amount": 5000.0}) == RuleMatch(
        "big-first-use", RuleAction.REVIEW, 7
    )
    assert RULES.decide({"amount": 5.0, "is_night": 1.0}) == RuleMatch(
        "any-night", RuleAction.REVIEW, 7
    )


def test_a_disabled_rule_never_matches_and_no_match_is_none() -> None:
    assert RULES.decide({"amount": 50.0, "is_night": 0.0}) is None
    assert RULES.active
    assert not RuleSet((rule("draft", "amount > 0 -> alert", enabled=False),)).active


def test_names_are_checked_unique_and_bounded() -> None:
    with pytest.raises(RuleSyntaxError, match="rule name 'Bad Name'"):
        rule("Bad Name", "amount > 1 -> alert")
    with pytest.raises(RuleSyntaxError, match="unique: a"):
        RuleSet((rule("a", "amount > 1 -> alert"), rule("a", "amount > 2 -> alert")))
    with pytest.raises(RuleSyntaxError, match=f"at most {MAX_RULES}"):
        RuleSet(tuple(rule(f"r{i}", "amount > 1 -> alert") for i in range(MAX_RULES + 1)))


def test_a_parse_error_names_the_rule() -> None:
    with pytest.raises(RuleSyntaxError, match="rule 'oops': unknown field 'amnt'"):
        rule("oops", "amnt > 1 -> alert")


def test_replaced_moves_to_the_next_version() -> None:
    later = RULES.replaced(RULES.rules[:1])
    assert later.version == 8
    assert [r.name for r in later.rules] == ["big-first-use"]
    assert RULES.named("draft") is not None
    assert RULES.named("nope") is None


def test_columns_are_decided_by_the_rule_that_decides_each_row() -> None:
    rows = pd.DataFrame(
        {
            "amount": [1.0, 1.0, 5_000.0, 5.0, 50.0],
            "is_night": [1.0, 1.0, 1.0, 1.0, 0.0],
            "card_terminal_first_use": [1.0, 0.0, 1.0, 0.0, 0.0],
            "terminal_id": ["T1", "T2", "T2", "T3", None],
        }
    )
    by_column: dict[int, str | None] = dict.fromkeys(range(len(rows)))
    for rule, decided in column_decisions(RULES.rules, rows):
        for index in decided.nonzero()[0].tolist():
            assert by_column[index] is None  # one rule decides a row
            by_column[index] = rule.name
    by_row = {}
    for index, record in enumerate(rows.to_dict("records")):
        match = RULES.decide({str(k): v for k, v in record.items() if v is not None})
        by_row[index] = None if match is None else match.rule
    assert by_column == by_row
    assert set(by_row.values()) == {
        "house-terminal",
        "night-small",
        "big-first-use",
        "any-night",
        None,
    }
