"""A fitted gradient-boosted tree ensemble as plain arrays, scored one row at a time.

scikit-learn's ``predict`` costs about a hundred microseconds per call whatever the batch size,
far more than a few shallow trees take to walk; the service scores one transaction at a time,
so the trees are copied out of the fitted model into flat lists and walked in plain Python.
Plain lists of numbers also pickle safely (no estimator class to allow) and keep the learner's
saved state small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TreeBasis:
    """Shallow regression trees whose summed leaves are a log-odds.

    Internal nodes of every tree share one numbering: node ``i`` sends a row whose
    ``features[split_feature[i]]`` is at most ``threshold[i]`` to ``left[i]``, else to
    ``right[i]``; a child ``c < 0`` is leaf ``~c``, whose value is ``leaf_value[~c]``. A tree
    that is a single leaf has root ``~leaf``. ``node_value`` and ``leaf_value`` hold each
    node's own prediction, so a path's steps split the leaf's value between the features that
    chose them.
    """

    features: tuple[str, ...]
    baseline: float
    roots: tuple[int, ...]
    split_feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    node_value: tuple[float, ...]
    leaf_value: tuple[float, ...]

    @classmethod
    def from_sklearn(cls, model: Any, features: Sequence[str]) -> TreeBasis:
        """Copy a fitted binary `HistGradientBoostingClassifier` (no categorical features)."""
        split_feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        node_value: list[float] = []
        leaf_value: list[float] = []
        roots: list[int] = []
        shrinkage = float(model.learning_rate)
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            flat: dict[int, int] = {}
            inner: list[int] = []
            for index, node in enumerate(nodes):
                if node["is_leaf"]:
                    flat[index] = ~len(leaf_value)
                    leaf_value.append(float(node["value"]))
                else:
                    flat[index] = len(split_feature) + len(inner)
                    inner.append(index)
            for index in inner:
                node = nodes[index]
                split_feature.append(int(node["feature_idx"]))
                threshold.append(float(node["num_threshold"]))
                left.append(flat[int(node["left"])])
                right.append(flat[int(node["right"])])
                # scikit-learn shrinks only the leaves' values by the learning rate.
                node_value.append(float(node["value"]) * shrinkage)
            roots.append(flat[0])
        baseline = float(model._baseline_prediction.ravel()[0])
        return cls(
            tuple(features),
            baseline,
            tuple(roots),
            tuple(split_feature),
            tuple(threshold),
            tuple(left),
            tuple(right),
            tuple(node_value),
            tuple(leaf_value),
        )

    @property
    def trees(self) -> int:
        return len(self.roots)

    def margin(self, row: Sequence[float]) -> float:
        """The ensemble's log-odds for ``row`` (values in `features` order)."""
        split_feature, threshold, left, right = (
            self.split_feature,
            self.threshold,
            self.left,
            self.right,
        )
        leaf_value = self.leaf_value
        total = self.baseline
        for root in self.roots:
            node = root
            while node >= 0:
                node = left[node] if row[split_feature[node]] <= threshold[node] else right[node]
            total += leaf_value[~node]
        return total

    def contributions(self, row: Sequence[float]) -> list[float]:
        """Each feature's share of `margin`: every step down a tree moves the prediction from
        the node's value to its child's, and that move is the split feature's. The shares and
        the roots' values sum to the margin less the baseline."""
        shares = [0.0] * len(self.features)
        split_feature, threshold, left, right = (
            self.split_feature,
            self.threshold,
            self.left,
            self.right,
        )
        node_value, leaf_value = self.node_value, self.leaf_value
        for root in self.roots:
            node = root
            while node >= 0:
                feature = split_feature[node]
                child = left[node] if row[feature] <= threshold[node] else right[node]
                after = leaf_value[~child] if child < 0 else node_value[child]
                shares[feature] += after - node_value[node]
                node = child
        return shares

    def root_total(self) -> float:
        """The baseline plus every tree's root value: the margin with no feature's share."""
        return self.baseline + sum(
            self.leaf_value[~root] if root < 0 else self.node_value[root] for root in self.roots
        )
