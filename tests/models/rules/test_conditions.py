"""The row evaluation (scoring) and the column evaluation (backtests) are one semantics."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.rules.conditions import (
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    Membership,
    Negation,
    column_mask,
    compile_condition,
    fields_of,
)

NUMBERS = st.sampled_from([0.0, 1.0, 2.5, 10.0])
TEXTS = st.sampled_from(["a", "b", "c"])

comparisons = st.one_of(
    st.builds(
        Comparison, st.just("x"), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), NUMBERS
    ),
    st.builds(Comparison, st.just("channel"), st.sampled_from(["==", "!="]), TEXTS),
    st.builds(
        Membership,
        st.just("channel"),
        st.lists(TEXTS, min_size=1, max_size=2).map(tuple),
        st.booleans(),
    ),
)
conditions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(Negation, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda ops: AllOf(tuple(ops))),
        st.lists(inner, min_size=2, max_size=3).map(lambda ops: AnyOf(tuple(ops))),
    ),
    max_leaves=6,
)
rows = st.lists(
    st.fixed_dictionaries(
        {"x": st.one_of(st.none(), NUMBERS), "channel": st.one_of(st.none(), TEXTS)}
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(conditions, rows)
def test_rows_and_columns_agree(condition: Condition, data: list[dict[str, object]]) -> None:
    frame = pd.DataFrame(data).astype({"x": "float64", "channel": "object"})
    by_row = [
        compile_condition(condition)({k: v for k, v in r.items() if v is not None}) for r in data
    ]
    assert column_mask(condition, frame).tolist() == by_row


def test_a_missing_field_matches_no_comparison_but_its_negation() -> None:
    absent = Comparison("channel", "!=", "pos")
    assert not compile_condition(absent)({})
    assert compile_condition(Negation(Comparison("channel", "==", "pos")))({})
    frame = pd.DataFrame({"amount": [1.0, 2.0]})
    assert column_mask(absent, frame).tolist() == [False, False]
    assert column_mask(Negation(absent), frame).tolist() == [True, True]


def test_values_compare_as_written() -> None:
    over = Comparison("amount", ">", 1000.0)
    frame = pd.DataFrame({"amount": [999.99, 1000.0, 1000.01, np.nan]})
    assert column_mask(over, frame).tolist() == [False, False, True, False]
    assert [compile_condition(over)({"amount": a}) for a in (999.99, 1000.0, 1000.01)] == [
        False,
        False,
        True,
    ]


def test_fields_of_names_every_field_read() -> None:
    condition = AnyOf(
        (
            Negation(Comparison("a", "<", 1.0)),
            AllOf((Membership("b", ("x",)), Comparison("c", "==", 2.0))),
        )
    )
    assert fields_of(condition) == {"a", "b", "c"}
