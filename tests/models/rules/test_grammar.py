import pytest

from models.rules.conditions import AllOf, AnyOf, Comparison, Membership, Negation
from models.rules.grammar import MAX_NESTING, RuleAction, RuleFields, RuleSyntaxError, parse_rule

FIELDS = RuleFields.of_features(("amount", "card_terminal_first_use", "is_night"))


def test_the_issue_example_parses_into_its_tree() -> None:
    parsed = parse_rule("amount > 1000 and card_terminal_first_use == 1 -> review", FIELDS)
    assert parsed.action is RuleAction.REVIEW
    assert parsed.condition == AllOf(
        (Comparison("amount", ">", 1000.0), Comparison("card_terminal_first_use", "==", 1.0))
    )


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    parsed = parse_rule("not is_night == 1 and amount < 5 or amount >= 900 -> alert", FIELDS)
    assert parsed.condition == AnyOf(
        (
            AllOf((Negation(Comparison("is_night", "==", 1.0)), Comparison("amount", "<", 5.0))),
            Comparison("amount", ">=", 900.0),
        )
    )


def test_lists_strings_and_negative_numbers() -> None:
    parsed = parse_rule(
        'country not in ("RU", "K\\"P") or (amount > -1.5e1 and channel != "pos") -> allow', FIELDS
    )
    assert parsed.action is RuleAction.ALLOW
    assert parsed.condition == AnyOf(
        (
            Membership("country", ("RU", 'K"P'), negated=True),
            AllOf((Comparison("amount", ">", -15.0), Comparison("channel", "!=", "pos"))),
        )
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amount > 5", "ends early"),
        ("amount > -> alert", "unexpected '->' at column 10"),
        ("amount > 5 -> block", "unexpected 'block'"),
        ("amunt > 5 -> alert", "unknown field 'amunt' at column 1"),
        ('country > "FR" -> alert', "'country' is text"),
        ('amount == "5" -> alert', "'amount' is a number"),
        ("card_id == 5 -> alert", "'card_id' is text"),
        ("__import__('os') -> alert", "unexpected"),
        ("amount > 5; drop -> alert", "unexpected ';'"),
    ],
)
def test_bad_text_is_refused_saying_what_and_where(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError, match=message.replace("(", r"\(")):
        parse_rule(text, FIELDS)


def test_length_and_nesting_are_bounded_before_parsing() -> None:
    deep = "(" * (MAX_NESTING + 1) + "amount > 1" + ")" * (MAX_NESTING + 1) + " -> alert"
    with pytest.raises(RuleSyntaxError, match="nest"):
        parse_rule(deep, FIELDS)
    shallow = "(" * MAX_NESTING + "amount > 1" + ")" * MAX_NESTING + " -> alert"
    assert parse_rule(shallow, FIELDS).condition == Comparison("amount", ">", 1.0)
    with pytest.raises(RuleSyntaxError, match="at most"):
        parse_rule("amount > 1 or " * 100 + "amount > 1 -> alert", FIELDS)
