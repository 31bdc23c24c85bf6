"""Trees copied out of scikit-learn: the same log-odds, walked one row at a time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from models.tree_basis import TreeBasis


@pytest.fixture(scope="module")
def fitted() -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = rng.random((3_000, 4))
    labels = (rows[:, 0] > 0.8) & (rows[:, 1] > 0.5) | (rows[:, 2] < 0.05)
    model = HistGradientBoostingClassifier(max_iter=25, max_depth=3, learning_rate=0.2)
    return model.fit(rows, labels), rows


def test_margin_is_scikit_learns_decision_function(
    fitted: tuple[HistGradientBoostingClassifier, np.ndarray],
) -> None:
    model, rows = fitted
    basis = TreeBasis.from_sklearn(model, ("a", "b", "c", "d"))
    assert basis.trees == 25
    ours = [basis.margin(row.tolist()) for row in rows[:300]]
    assert ours == pytest.approx(model.decision_function(rows[:300]).tolist(), abs=1e-12)


def test_contributions_split_the_margin_between_the_features_that_decide_it(
    fitted: tuple[HistGradientBoostingClassifier, np.ndarray],
) -> None:
    model, _ = fitted
    basis = TreeBasis.from_sklearn(model, ("a", "b", "c", "d"))
    row = [0.9, 0.9, 0.5, 0.5]
    shares = basis.contributions(row)
    assert basis.root_total() + sum(shares) == pytest.approx(basis.margin(row))
    # Fraud here is a and b both high: they carry the push, the idle feature d almost none.
    assert shares[0] > 0.5
    assert shares[1] > 0.5
    assert abs(shares[3]) < 0.1 * min(shares[0], shares[1])


def test_a_single_leaf_ensemble_is_its_baseline_plus_the_leaves() -> None:
    rows = np.zeros((50, 2))
    labels = np.arange(50) < 5
    model = HistGradientBoostingClassifier(max_iter=3).fit(rows, labels)
    basis = TreeBasis.from_sklearn(model, ("a", "b"))
    assert all(root < 0 for root in basis.roots)
    assert basis.margin([0.0, 0.0]) == pytest.approx(float(model.decision_function(rows[:1])[0]))
    assert basis.contributions([0.0, 0.0]) == [0.0, 0.0]
