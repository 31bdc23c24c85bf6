"""The rules' grammar: text an administrator writes, parsed into a `Condition` and an action.

    amount > 1000 and card_terminal_first_use == 1 -> review
    country in ("RU", "KP") or not (channel == "pos") -> alert
    terminal_id == "T-1042" -> allow

Comparisons (``== != < <= > >=``), ``in`` / ``not in`` a list, ``and``, ``or``, ``not`` and
parentheses over fields and literals (numbers, double-quoted strings): nothing else. The text is
parsed by lark into a tree of plain values, never evaluated as Python, and every field is
checked against the fields a rule may read, with its type, before a rule exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from models.rules.conditions import (
    ORDERINGS,
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    Literal,
    Membership,
    Negation,
)

MAX_RULE_CHARS = 1_000
MAX_NESTING = 16
"""Parentheses deep: bounds the recursion that turns the parse tree into a condition."""

TEXT_FIELDS = (
    "card_id",
    "terminal_id",
    "currency",
    "merchant_category",
    "channel",
    "country",
)
"""Transaction fields a rule may compare as text; the numeric fields are the feature vector's."""


class RuleAction(StrEnum):
    """What a matching rule does to the model's decision."""

    ALERT = "alert"
    """Raise an alert whatever the score."""
    REVIEW = "review"
    """Ask an investigator to look, without the weight of a fraud alert."""
    ALLOW = "allow"
    """Raise nothing, whatever the score (a known-good terminal, a test card)."""


class RuleSyntaxError(ValueError):
    """Rule text that does not parse or reads a field it may not; the message says where."""


@dataclass(frozen=True)
class RuleFields:
    """The fields a rule may read, by type: text fields and numeric ones."""

    numeric: frozenset[str]
    text: frozenset[str] = frozenset(TEXT_FIELDS)

    @classmethod
    def of_features(cls, feature_names: tuple[str, ...]) -> RuleFields:
        return cls(numeric=frozenset(feature_names))

    def __contains__(self, field: object) -> bool:
        return field in self.numeric or field in self.text


@dataclass(frozen=True)
class ParsedRule:
    condition: Condition
    action: RuleAction


_GRAMMAR = r"""
    start: condition "->" ACTION
    ?condition: disjunction
    ?disjunction: conjunction ("or" conjunction)*
    ?conjunction: negation ("and" negation)*
    ?negation: "not" negation -> negated
             | atom
    ?atom: comparison
         | membership
         | "(" condition ")"
    comparison: FIELD OPERATOR literal
    membership: FIELD IN "(" literal ("," literal)* ")"
    IN: "not" WS+ "in" | "in"
    ?literal: SIGNED_NUMBER -> number
            | ESCAPED_STRING -> string
    OPERATOR: "==" | "!=" | "<=" | ">=" | "<" | ">"
    ACTION: "alert" | "review" | "allow"
    FIELD: /[a-z_][a-z0-9_]*/

    %import common.SIGNED_NUMBER
    %import common.ESCAPED_STRING
    %import common.WS
    %ignore WS
"""

_ENDS_EARLY = "the rule ends early: it needs a condition, '->' and an action (alert, review, allow)"

_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)


class _FieldError(Exception):
    pass


@v_args(inline=True)
class _ToCondition(Transformer[Token, ParsedRule]):
    def __init__(self, fields: RuleFields) -> None:
        super().__init__()
        self._fields = fields

    def start(self, condition: Condition, action: Token) -> ParsedRule:
        return ParsedRule(condition, RuleAction(str(action)))

    def disjunction(self, *operands: Condition) -> Condition:
        return AnyOf(operands)

    def conjunction(self, *operands: Condition) -> Condition:
        return AllOf(operands)

    def negated(self, operand: Condition) -> Condition:
        return Negation(operand)

    def number(self, token: Token) -> float:
        return float(token)

    def string(self, token: Token) -> str:
        # ESCAPED_STRING keeps its quotes; escapes other than \" and \\ stay as written.
        return str(token)[1:-1].replace('\\"', '"').replace("\\\\", "\\")

    def comparison(self, field: Token, op: Token, value: Literal) -> Condition:
        name = self._checked(field, value)
        if isinstance(value, str) and str(op) in ORDERINGS:
            raise _FieldError(f"{name!r} is text: it can be compared with == or != only")
        return Comparison(name, str(op), value)

    def membership(self, field: Token, keyword: Token, *values: Literal) -> Condition:
        name = str(field)
        for value in values:
            self._checked(field, value)
        return Membership(name, tuple(values), negated=str(keyword).startswith("not"))

    def _checked(self, field: Token, value: Literal) -> str:
        name = str(field)
        if name not in self._fields:
            raise _FieldError(f"unknown field {name!r} at column {field.column}")
        is_text = name in self._fields.text
        if is_text != isinstance(value, str):
            kind = "text: compare it with a quoted string" if is_text else "a number"
            raise _FieldError(f"{name!r} is {kind}, not {value!r}")
        return name


def parse_rule(text: str, fields: RuleFields) -> ParsedRule:
    """The condition and action of ``text``, or `RuleSyntaxError` saying what is wrong where."""
    if len(text) > MAX_RULE_CHARS:
        raise RuleSyntaxError(f"a rule is at most {MAX_RULE_CHARS} characters")
    if _nesting(text) > MAX_NESTING:
        raise RuleSyntaxError(f"parentheses nest at most {MAX_NESTING} deep")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedEOF:
        raise RuleSyntaxError(_ENDS_EARLY) from None
    except UnexpectedCharacters as error:
        raise RuleSyntaxError(f"unexpected {error.char!r} at column {error.column}") from None
    except UnexpectedToken as error:
        if error.token.type == "$END":
            raise RuleSyntaxError(_ENDS_EARLY) from None
        raise RuleSyntaxError(f"unexpected {str(error.token)!r} at column {error.column}") from None
    try:
        return _ToCondition(fields).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, _FieldError):
            raise RuleSyntaxError(str(error.orig_exc)) from None
        raise


def _nesting(text: str) -> int:
    depth = deepest = 0
    for character in text:
        if character == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif character == ")":
            depth -= 1
    return deepest
