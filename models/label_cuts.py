"""Cut points where the labels say the fraud rate changes: supervised edges for binned features.

Quantile edges follow the values, not the fraud: a rule such as "every amount above 220 is
fraud" falls inside a bin that also holds legitimate amounts, and that bin's one weight can only
average the two. A shallow decision tree on the feature alone puts its splits where the classes
separate best (Gini impurity, frauds not reweighted, so a small region that is all fraud is a
good split even when it holds a few dozen payments); its thresholds become extra edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.tree import DecisionTreeClassifier

MIN_PAYMENTS_PER_SIDE = 5
"""A cut leaves at least this many warm-up values on each side: a region of a handful of frauds
is a pattern, a single outlier is not."""

_LEAF = -1
"""scikit-learn's marker of a leaf in ``tree_.children_left``."""


def label_cuts(values: Sequence[float], is_fraud: Sequence[bool], most: int) -> list[float]:
    """Up to ``most`` thresholds on ``values`` that best separate frauds from the rest, sorted.

    Examples
    --------
    >>> amounts = [float(a) for a in range(300)]
    >>> label_cuts(amounts, [a > 220 for a in amounts], most=3)
    [220.5]
    >>> label_cuts(amounts, [False] * 300, most=3)  # nothing to separate
    []
    """
    if most <= 0:
        return []
    labels = np.asarray(is_fraud, dtype=bool)
    if labels.all() or not labels.any():
        return []
    tree = DecisionTreeClassifier(
        max_leaf_nodes=most + 1, min_samples_leaf=MIN_PAYMENTS_PER_SIDE, random_state=0
    ).fit(np.asarray(values, dtype=np.float64).reshape(-1, 1), labels)
    inner = tree.tree_.children_left != _LEAF
    return sorted({float(cut) for cut in tree.tree_.threshold[inner]})
