"""A fitted gradient-boosting model's trees as flat arrays, walked for all trees at once.

scikit-learn's `HistGradientBoostingClassifier.predict_proba` calls each tree in turn: about
10 µs a tree however few the rows, so a 200-tree model costs milliseconds for the one row a
live score needs. `FlatTrees` keeps the same nodes (feature, threshold, where a missing value
goes, children, leaf values) in arrays indexed across the whole ensemble and moves every tree's
current node one level down per step: as many numpy steps as the deepest tree is deep, whatever
the number of trees or rows.

Only numeric splits are read: the batch retrain trains on numeric features alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

CHUNK_ROWS = 4_096
"""Rows walked together: each step holds a few arrays of rows x trees."""


@dataclass(frozen=True)
class FlatTrees:
    """Every node of every tree, the ensemble's trees side by side.

    A leaf's children are the leaf itself, so walking past a leaf stays on it.
    """

    feature: npt.NDArray[np.intp]
    threshold: Matrix
    missing_left: npt.NDArray[np.bool_]
    children: npt.NDArray[np.intp]
    """Each node's left child at ``2 * node``, its right child at ``2 * node + 1``."""
    value: Matrix
    roots: npt.NDArray[np.intp]
    depth: int
    baseline: float

    @classmethod
    def of(cls, model: Any) -> FlatTrees:
        """The trees of a fitted binary `HistGradientBoostingClassifier`."""
        nodes = [predictor.nodes for (predictor,) in model._predictors]
        if any(tree["is_categorical"].any() for tree in nodes):
            raise ValueError("categorical splits are not supported")
        offsets = np.cumsum([0, *(len(tree) for tree in nodes)])[:-1]
        joined = np.concatenate(nodes)
        leaf = joined["is_leaf"].astype(bool)
        own = np.arange(len(joined), dtype=np.intp)
        shift = np.repeat(offsets, [len(tree) for tree in nodes]).astype(np.intp)
        left = np.where(leaf, own, joined["left"].astype(np.intp) + shift)
        right = np.where(leaf, own, joined["right"].astype(np.intp) + shift)
        return cls(
            feature=np.where(leaf, 0, joined["feature_idx"]).astype(np.intp),
            threshold=joined["num_threshold"].astype(np.float64),
            missing_left=joined["missing_go_to_left"].astype(bool),
            children=np.stack([left, right], axis=1).ravel(),
            value=joined["value"].astype(np.float64),
            roots=offsets.astype(np.intp),
            depth=int(joined["depth"].max()),
            baseline=float(np.asarray(model._baseline_prediction).ravel()[0]),
        )

    def raw(self, matrix: Matrix) -> Matrix:
        """The log-odds of each row: the baseline plus the leaf each tree sends it to."""
        if len(matrix) <= CHUNK_ROWS:
            return self._raw(matrix)
        return np.concatenate(
            [self._raw(matrix[at : at + CHUNK_ROWS]) for at in range(0, len(matrix), CHUNK_ROWS)]
        )

    def _raw(self, matrix: Matrix) -> Matrix:
        feature, threshold, children = self.feature, self.threshold, self.children
        if np.isnan(matrix).any():
            rows = np.arange(len(matrix))[:, None]
            node = np.broadcast_to(self.roots, (len(matrix), len(self.roots)))
            for _ in range(self.depth):
                x = matrix[rows, feature[node]]
                left = np.where(np.isnan(x), self.missing_left[node], x <= threshold[node])
                node = children[2 * node + ~left]
        elif len(matrix) == 1:
            # One row (a live score): plain vectors, half the cost of the general case.
            row, node = matrix[0], self.roots
            for _ in range(self.depth):
                node = children[2 * node + (row[feature[node]] > threshold[node])]
            node = node[None, :]
        else:
            rows = np.arange(len(matrix))[:, None]
            node = np.broadcast_to(self.roots, (len(matrix), len(self.roots)))
            for _ in range(self.depth):
                node = children[2 * node + (matrix[rows, feature[node]] > threshold[node])]
        # Summed along each row's own contiguous axis: a row's sum does not depend on the batch.
        raw: Matrix = self.value[node].sum(axis=1) + self.baseline
        return raw

    def predict_proba(self, matrix: Matrix) -> Matrix:
        """The probability of the positive class for each row."""
        probability: Matrix = 1.0 / (1.0 + np.exp(-self.raw(matrix)))
        return probability
