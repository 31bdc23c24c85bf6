"""Conditions of a rule, as a tree of plain values, evaluated one row at a time or over columns.

A comparison on a missing field (an optional transaction field left out, a column the rows do
not carry) is false, and its negation true: `channel != "pos"` does not match a transaction
without a channel, `not channel == "pos"` does. Two-valued on purpose, so that `not` always means
what it says. The row and the column evaluations are one semantics; `tests/models/rules` checks
them against each other.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

Literal: TypeAlias = float | str
Row: TypeAlias = Mapping[str, object]
Mask: TypeAlias = "np.ndarray[tuple[int], np.dtype[np.bool_]]"

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ORDERINGS = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: Literal


@dataclass(frozen=True)
class Membership:
    field: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Negation:
    operand: Condition


@dataclass(frozen=True)
class AllOf:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    operands: tuple[Condition, ...]


Condition: TypeAlias = Comparison | Membership | Negation | AllOf | AnyOf


def fields_of(condition: Condition) -> frozenset[str]:
    """Every field a condition reads."""
    match condition:
        case Comparison(field=field) | Membership(field=field):
            return frozenset({field})
        case Negation(operand=operand):
            return fields_of(operand)
        case AllOf(operands=operands) | AnyOf(operands=operands):
            return frozenset().union(*(fields_of(operand) for operand in operands))


def compile_condition(condition: Condition) -> Callable[[Row], bool]:
    """A predicate over one row (a transaction's fields merged with its feature vector).

    Built once per rule so that scoring walks closures, not the tree.
    """
    match condition:
        case Comparison(field=field, op=op, value=value):
            compare = COMPARISONS[op]

            def comparison(row: Row) -> bool:
                seen = row.get(field)
                return seen is not None and bool(compare(seen, value))

            return comparison
        case Membership(field=field, values=values, negated=negated):
            allowed = frozenset(values)

            def membership(row: Row) -> bool:
                seen = row.get(field)
                return seen is not None and ((seen in allowed) != negated)

            return membership
        case Negation(operand=operand):
            inner = compile_condition(operand)
            return lambda row: not inner(row)
        case AllOf(operands=operands):
            parts = tuple(compile_condition(operand) for operand in operands)
            return lambda row: all(part(row) for part in parts)
        case AnyOf(operands=operands):
            parts = tuple(compile_condition(operand) for operand in operands)
            return lambda row: any(part(row) for part in parts)


def column_mask(condition: Condition, rows: pd.DataFrame) -> Mask:
    """Which of ``rows`` match, evaluated column-wise (a backtest over stored rows)."""
    match condition:
        case Comparison(field=field, op=op, value=value):
            if field not in rows:
                return np.zeros(len(rows), dtype=bool)
            column = rows[field]
            present = column.notna().to_numpy()
            compared: pd.Series[bool] = COMPARISONS[op](column, value)
            return present & compared.fillna(False).to_numpy(dtype=bool)
        case Membership(field=field, values=values, negated=negated):
            if field not in rows:
                return np.zeros(len(rows), dtype=bool)
            column = rows[field]
            present = column.notna().to_numpy()
            inside: Mask = column.isin(list(values)).to_numpy(dtype=bool)
            return present & (inside ^ negated)
        case Negation(operand=operand):
            return ~column_mask(operand, rows)
        case AllOf(operands=operands):
            mask = np.ones(len(rows), dtype=bool)
            for operand in operands:
                mask &= column_mask(operand, rows)
            return mask
        case AnyOf(operands=operands):
            mask = np.zeros(len(rows), dtype=bool)
            for operand in operands:
                mask |= column_mask(operand, rows)
            return mask
