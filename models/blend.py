"""Serving the best of an online learner and a batch model: a weighted mean of their log-odds.

The batch model is retrained weekly and is strong on the patterns its window held; the online
learner adapts between retrains. Neither is always better, so at each retrain the weight of
the batch model is chosen on the latest fully labelled week, from scores both models gave (the
online learner's as recorded at arrival, the batch model's back-test), and held until the next
retrain. Weight 0 serves the online learner alone, 1 the batch model alone: the blend is
never chosen worse, on that week, than the better of the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.metrics import average_precision

Scores = npt.NDArray[np.float64]

BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The batch model's weights tried: coarse, so a week of labels can tell them apart."""

_EDGE = 1e-12


def _log_odds(probability: npt.ArrayLike) -> Scores:
    clipped = np.clip(np.asarray(probability, dtype=np.float64), _EDGE, 1.0 - _EDGE)
    odds: Scores = np.log(clipped) - np.log1p(-clipped)
    return odds


def blend(online: npt.ArrayLike, batch: npt.ArrayLike, weight: float) -> Scores:
    """Fraud probabilities from the ``weight``-weighted mean of the two models' log-odds.

    Examples
    --------
    >>> blend([0.1, 0.5], [0.9, 0.5], 0.5).round(6).tolist()
    [0.5, 0.5]
    >>> blend([0.2], [0.7], 0.0).tolist(), blend([0.2], [0.7], 1.0).tolist()
    ([0.2], [0.7])
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the batch model's weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return np.asarray(online, dtype=np.float64)
    if weight == 1.0:
        return np.asarray(batch, dtype=np.float64)
    mixed = (1.0 - weight) * _log_odds(online) + weight * _log_odds(batch)
    result: Scores = 1.0 / (1.0 + np.exp(-mixed))
    return result


def best_weight(
    is_fraud: npt.ArrayLike,
    online: npt.ArrayLike,
    batch: npt.ArrayLike,
    weights: Sequence[float] = BLEND_WEIGHTS,
) -> float:
    """The weight whose blend has the highest AP on these labelled scores; ties go to the
    online learner (the lower weight), which keeps adapting.

    Examples
    --------
    >>> best_weight([True, False, False], [0.9, 0.1, 0.2], [0.1, 0.9, 0.2])
    0.0
    >>> best_weight([True, False, False], [0.1, 0.9, 0.2], [0.9, 0.1, 0.2])  # ranks perfectly
    0.75
    """
    best, best_ap = weights[0], -1.0
    for weight in weights:
        ap = average_precision(is_fraud, blend(online, batch, weight))
        if not np.isnan(ap) and ap > best_ap:
            best, best_ap = weight, ap
    return best
