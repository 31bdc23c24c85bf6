"""Flat trees score as scikit-learn's gradient boosting does, a row the same alone or in a batch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from models import tree_rows
from models.tree_rows import FlatTrees


def _fitted(missing: bool) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6_000, 6))
    y = x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=6_000) > 1.5
    if missing:
        x[rng.random(x.shape) < 0.1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    return model, x


@pytest.mark.parametrize("missing", [False, True])
def test_probabilities_are_scikit_learns(missing: bool) -> None:
    model, x = _fitted(missing)
    trees = FlatTrees.of(model)
    assert trees.depth > 1
    assert np.allclose(trees.predict_proba(x), model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_a_row_scores_the_same_alone_in_a_batch_or_across_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, x = _fitted(missing=True)
    trees = FlatTrees.of(model)
    together = trees.predict_proba(x[:300])
    alone = [trees.predict_proba(x[row : row + 1])[0] for row in range(300)]
    assert together.tolist() == alone
    monkeypatch.setattr(tree_rows, "CHUNK_ROWS", 64)
    assert trees.predict_proba(x[:300]).tolist() == alone


def test_categorical_splits_are_refused() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 5, 2_000), rng.normal(size=2_000)])
    y = (x[:, 0] == 3) | (x[:, 1] > 1.5)
    model = HistGradientBoostingClassifier(
        max_iter=10, categorical_features=[0], random_state=0
    ).fit(x, y)
    with pytest.raises(ValueError, match="categorical"):
        FlatTrees.of(model)
