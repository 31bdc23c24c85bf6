"""Serving the best of an online learner and a batch model: a weighted mean of their log-odds.

The batch model is retrained weekly and is strong on the patterns its window held; the online
learner adapts between retrains. Neither is always better. `best_weight` chooses the batch
model's weight on labelled scores of both; weight 0 serves the online learner alone, 1 the
batch model alone, so the blend is never chosen worse, on those labels, than the better of the
two. `RecentWeight` keeps choosing it on the most recent labels, each scored by both parts as
they stand when the label arrives: with labels a week late, the scores a transaction got at
arrival say how the parts ranked a week ago, too late to follow a new fraud pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass
class RecentWeight:
    """The batch model's weight, re-chosen every ``every_seconds`` of event time on the labels
    that arrived in the last ``window_seconds``.

    Each label is given with the online learner's score of its stored vector just before the
    learner learns it, and the batch model's score of that vector by the model serving then:
    neither part has learned the label yet, so the window compares them as they rank now. A
    window holding fewer than ``min_frauds`` frauds (or no legitimate label) keeps the weight.

    Examples
    --------
    >>> recent = RecentWeight(window_seconds=100, every_seconds=10, min_frauds=1, weight=1.0)
    >>> recent.add([0, 1, 2], online=[0.9, 0.1, 0.2], batch=[0.1, 0.9, 0.2], is_fraud=[1, 0, 0])
    >>> recent.due(5), recent.choose(5), recent.due(14), recent.due(15)
    (True, 0.0, False, True)
    >>> recent.choose(500)  # every label has left the window: the weight is kept
    0.0
    """

    window_seconds: int = 3 * 86_400
    every_seconds: int = 86_400
    min_frauds: int = 20
    weight: float = 1.0
    """The weight served until the next choice."""
    weights: tuple[float, ...] = BLEND_WEIGHTS
    _seconds: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.empty(0, np.int64), repr=False
    )
    _online: Scores = field(default_factory=lambda: np.empty(0), repr=False)
    _batch: Scores = field(default_factory=lambda: np.empty(0), repr=False)
    _fraud: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, bool), repr=False)
    _next: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.every_seconds <= 0:
            raise ValueError("the window and the period between choices must be positive")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"the batch model's weight must be in [0, 1], got {self.weight}")

    @property
    def labels(self) -> int:
        """Labels held in the window (as of the latest choice, plus those added since)."""
        return len(self._seconds)

    def add(
        self,
        seconds: npt.ArrayLike,
        online: npt.ArrayLike,
        batch: npt.ArrayLike,
        is_fraud: npt.ArrayLike,
    ) -> None:
        """Labels that arrived at ``seconds``, in arrival order, with both parts' scores."""
        self._seconds = np.concatenate([self._seconds, np.asarray(seconds, np.int64)])
        self._online = np.concatenate([self._online, np.asarray(online, np.float64)])
        self._batch = np.concatenate([self._batch, np.asarray(batch, np.float64)])
        self._fraud = np.concatenate([self._fraud, np.asarray(is_fraud, bool)])

    def due(self, second: int) -> bool:
        """Whether the weight is to be chosen again at event second ``second``."""
        return self._next is None or second >= self._next

    def choose(self, second: int) -> float:
        """Forget the labels older than the window, choose the weight on the rest, and hold it
        until ``every_seconds`` later."""
        keep = self._seconds >= second - self.window_seconds
        if not keep.all():
            self._seconds, self._online = self._seconds[keep], self._online[keep]
            self._batch, self._fraud = self._batch[keep], self._fraud[keep]
        frauds = int(self._fraud.sum())
        if max(self.min_frauds, 1) <= frauds < len(self._fraud):
            self.weight = best_weight(self._fraud, self._online, self._batch, self.weights)
        self._next = second + self.every_seconds
        return self.weight
