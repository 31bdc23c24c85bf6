"""A versioned set of named rules, and what it decides for one transaction.

When several rules match, ``allow`` wins over ``alert``, and ``alert`` over ``review`` (an
exception an administrator wrote for known-good traffic must hold against every broader rule);
among rules of one action the first in the set's order decides. Disabled rules are kept, so a
draft can be backtested and switched on later, but never match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from models.rules.conditions import Condition, Mask, Row, column_mask, compile_condition
from models.rules.grammar import RuleAction, RuleFields, RuleSyntaxError, parse_rule

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_RULES = 200

PRECEDENCE = (RuleAction.ALLOW, RuleAction.ALERT, RuleAction.REVIEW)
"""The order in which actions decide: an exception for known-good traffic holds first."""


def in_precedence(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """The enabled rules in the order they decide: by action (`PRECEDENCE`), then as given."""
    enabled = [rule for rule in rules if rule.enabled]
    return tuple(rule for action in PRECEDENCE for rule in enabled if rule.action is action)


def column_decisions(rules: Iterable[Rule], rows: pd.DataFrame) -> Iterator[tuple[Rule, Mask]]:
    """Each enabled rule with the rows it decides, column-wise: what `RuleSet.decide` answers
    row by row (a row is decided by the first rule, in precedence, that matches it)."""
    undecided = np.ones(len(rows), dtype=bool)
    for rule in in_precedence(rules):
        decided = column_mask(rule.condition, rows) & undecided
        undecided &= ~decided
        yield rule, decided


@dataclass(frozen=True)
class Rule:
    """One named rule: its text as written, and what that text parsed into."""

    name: str
    text: str
    condition: Condition
    action: RuleAction
    enabled: bool = True

    @cached_property
    def matches(self) -> Callable[[Row], bool]:
        """The condition compiled once into a predicate over one row."""
        return compile_condition(self.condition)

    @classmethod
    def parse(cls, name: str, text: str, fields: RuleFields, *, enabled: bool = True) -> Rule:
        """The rule ``text`` names, or `RuleSyntaxError` (naming the rule) if it is not one."""
        if not RULE_NAME.match(name):
            raise RuleSyntaxError(
                f"rule name {name!r}: lower-case letters, digits, '-' and '_', at most 64"
            )
        try:
            parsed = parse_rule(text, fields)
        except RuleSyntaxError as error:
            raise RuleSyntaxError(f"rule {name!r}: {error}") from None
        return cls(
            name=name,
            text=text,
            condition=parsed.condition,
            action=parsed.action,
            enabled=enabled,
        )


@dataclass(frozen=True)
class RuleMatch:
    """The rule that decided a transaction, and its set's version."""

    rule: str
    action: RuleAction
    version: int


@dataclass(frozen=True)
class RuleSet:
    """Rules in the order an administrator gave them, under one version number."""

    rules: tuple[Rule, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.rules) > MAX_RULES:
            raise RuleSyntaxError(f"a rule set holds at most {MAX_RULES} rules")
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise RuleSyntaxError(f"rule names must be unique: {', '.join(repeated)}")

    @cached_property
    def _deciding(self) -> tuple[Rule, ...]:
        return in_precedence(self.rules)

    @property
    def active(self) -> bool:
        """Whether any rule can match: when none can, scoring skips building the row."""
        return any(rule.enabled for rule in self.rules)

    def decide(self, row: Row) -> RuleMatch | None:
        """The rule that decides ``row`` (a transaction's fields and feature vector), if any."""
        for rule in self._deciding:
            if rule.matches(row):
                return RuleMatch(rule.name, rule.action, self.version)
        return None

    def named(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def replaced(self, rules: Iterable[Rule]) -> RuleSet:
        """The next version, holding ``rules``."""
        return RuleSet(tuple(rules), self.version + 1)
