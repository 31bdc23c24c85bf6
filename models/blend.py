"""Serving the best of an online learner and a batch model: a weighted mean of their log-odds,
or the probability that either part is right to suspect.

The batch model is retrained weekly and is strong on the patterns its window held; the online
learner adapts between retrains. Neither is always better. `best_blend` chooses how to combine
them on labelled scores of both: the batch model's weight in a mean of the two log-odds (0
serves the online learner alone, 1 the batch model alone), or `EITHER`. So the blend is never
chosen worse, on those labels, than the better of the two. `RecentBlend` keeps choosing it on
the most recent labels, each scored by both parts as they stand when the label arrives: with
labels a week late, the scores a transaction got at arrival say how the parts ranked a week
ago, too late to follow a new fraud pattern.

`EITHER` is there for the days a new pattern appears: the online learner has learned its
first labels and the batch model has not, and any mean of the two halves the online learner's
log-odds on the pattern's payments, where "either" keeps them high.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from models.metrics import average_precision

Scores = npt.NDArray[np.float64]

EITHER: Final = "either"
"""Serve ``1 - (1 - online) * (1 - batch)``: fraud unless both parts clear the payment."""

Blend = float | Literal["either"]
"""How the two parts are combined: the batch model's weight in the mean of their log-odds, or
`EITHER`."""

BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The batch model's weights tried: coarse, so a week of labels can tell them apart."""

BLENDS: tuple[Blend, ...] = (*BLEND_WEIGHTS, EITHER)
"""Every blend tried, in order of preference when two rank the labels equally."""

_EDGE = 1e-12


def blend_name(chosen: Blend) -> str:
    """How a blend is shown: its batch weight (``0.75``) or ``either``."""
    return chosen if isinstance(chosen, str) else f"{chosen:g}"


def _log_odds(probability: npt.ArrayLike) -> Scores:
    clipped = np.clip(np.asarray(probability, dtype=np.float64), _EDGE, 1.0 - _EDGE)
    odds: Scores = np.log(clipped) - np.log1p(-clipped)
    return odds


def blend(online: npt.ArrayLike, batch: npt.ArrayLike, chosen: Blend) -> Scores:
    """Fraud probabilities as ``chosen``: the mean of the two models' log-odds with the batch
    model's at weight ``chosen``, or either model's suspicion (`EITHER`).

    Examples
    --------
    >>> blend([0.1, 0.5], [0.9, 0.5], 0.5).round(6).tolist()
    [0.5, 0.5]
    >>> blend([0.2], [0.7], 0.0).tolist(), blend([0.2], [0.7], 1.0).tolist()
    ([0.2], [0.7])
    >>> blend([0.9, 0.1], [0.1, 0.1], EITHER).round(6).tolist()
    [0.91, 0.19]
    """
    if isinstance(chosen, str):
        if chosen != EITHER:
            raise ValueError(f"a blend is a weight in [0, 1] or {EITHER!r}, got {chosen!r}")
        either: Scores = 1.0 - (1.0 - np.asarray(online, np.float64)) * (
            1.0 - np.asarray(batch, np.float64)
        )
        return either
    if not 0.0 <= chosen <= 1.0:
        raise ValueError(f"the batch model's weight must be in [0, 1], got {chosen}")
    if chosen == 0.0:
        return np.asarray(online, dtype=np.float64)
    if chosen == 1.0:
        return np.asarray(batch, dtype=np.float64)
    mixed = (1.0 - chosen) * _log_odds(online) + chosen * _log_odds(batch)
    result: Scores = 1.0 / (1.0 + np.exp(-mixed))
    return result


def blend_one(online: float, batch: float, chosen: Blend) -> float:
    """`blend` of one transaction's two scores, without numpy's per-call cost.

    >>> [round(blend_one(0.1, 0.9, 0.5), 6), round(blend_one(0.9, 0.1, EITHER), 6)]
    [0.5, 0.91]
    >>> blend_one(0.2, 0.7, 0.0), blend_one(0.2, 0.7, 1.0)
    (0.2, 0.7)
    """
    if isinstance(chosen, str):
        return 1.0 - (1.0 - online) * (1.0 - batch)
    if chosen == 0.0:
        return online
    if chosen == 1.0:
        return batch
    online = min(max(online, _EDGE), 1.0 - _EDGE)
    batch = min(max(batch, _EDGE), 1.0 - _EDGE)
    mixed = (1.0 - chosen) * (math.log(online) - math.log1p(-online)) + chosen * (
        math.log(batch) - math.log1p(-batch)
    )
    return 1.0 / (1.0 + math.exp(-mixed))


def best_blend(
    is_fraud: npt.ArrayLike,
    online: npt.ArrayLike,
    batch: npt.ArrayLike,
    choices: Sequence[Blend] = BLENDS,
) -> Blend:
    """The blend with the highest AP on these labelled scores; ties go to the first in
    ``choices`` (the online learner's side, which keeps adapting).

    Examples
    --------
    >>> best_blend([True, False, False], [0.9, 0.1, 0.2], [0.1, 0.9, 0.2])
    0.0
    >>> best_blend([True, False, False], [0.1, 0.9, 0.2], [0.9, 0.1, 0.2])  # ranks perfectly
    0.75
    >>> best_blend([True, True, False, False], [0.9, 0.1, 0.6, 0.2], [0.1, 0.9, 0.6, 0.2])
    'either'
    """
    best, best_ap = choices[0], -1.0
    for choice in choices:
        ap = average_precision(is_fraud, blend(online, batch, choice))
        if not np.isnan(ap) and ap > best_ap:
            best, best_ap = choice, ap
    return best


@dataclass
class RecentBlend:
    """The blend, re-chosen every ``every_seconds`` of event time on the labels that arrived in
    the last ``window_seconds``.

    Each label is given with the online learner's score of its stored vector just before the
    learner learns it, and the batch model's score of that vector by the model serving then:
    neither part has learned the label yet, so the window compares them as they rank now. A
    window holding fewer than ``min_frauds`` frauds (or no legitimate label) keeps the blend.
    Chosen every hour: a new pattern's labels arrive over a day, and the day they start is the
    day the online learner pulls ahead. The window holds at most ``max_labels``, the newest:
    a service learning millions of labels a day chooses on its last hours, in bounded memory
    and time.

    Examples
    --------
    >>> recent = RecentBlend(window_seconds=100, every_seconds=10, min_frauds=1, chosen=1.0)
    >>> recent.add([0, 1, 2], online=[0.9, 0.1, 0.2], batch=[0.1, 0.9, 0.2], is_fraud=[1, 0, 0])
    >>> recent.due(5), recent.choose(5), recent.due(14), recent.due(15)
    (True, 0.0, False, True)
    >>> recent.choose(500)  # every label has left the window: the blend is kept
    0.0
    """

    window_seconds: int = 3 * 86_400
    every_seconds: int = 3_600
    min_frauds: int = 20
    max_labels: int = 100_000
    chosen: Blend = 1.0
    """The blend served until the next choice."""
    choices: tuple[Blend, ...] = BLENDS
    _seconds: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.empty(0, np.int64), repr=False
    )
    _online: Scores = field(default_factory=lambda: np.empty(0), repr=False)
    _batch: Scores = field(default_factory=lambda: np.empty(0), repr=False)
    _fraud: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, bool), repr=False)
    _next: int | None = field(default=None, repr=False)
    _chosen_at: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.every_seconds <= 0 or self.max_labels <= 0:
            raise ValueError("the window, its size and the period between choices must be positive")
        if self.chosen not in self.choices:
            raise ValueError(f"the blend must be one of {self.choices}, got {self.chosen!r}")

    @property
    def chosen_at(self) -> int | None:
        """The event second of the latest choice (``None``: not chosen yet)."""
        return self._chosen_at

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
        keep = -self.max_labels
        self._seconds = np.concatenate([self._seconds, np.asarray(seconds, np.int64)])[keep:]
        self._online = np.concatenate([self._online, np.asarray(online, np.float64)])[keep:]
        self._batch = np.concatenate([self._batch, np.asarray(batch, np.float64)])[keep:]
        self._fraud = np.concatenate([self._fraud, np.asarray(is_fraud, bool)])[keep:]

    def due(self, second: int) -> bool:
        """Whether the blend is to be chosen again at event second ``second``."""
        return self._next is None or second >= self._next

    def choose(self, second: int) -> Blend:
        """Forget the labels older than the window, choose the blend on the rest, and hold it
        until ``every_seconds`` later."""
        keep = self._seconds >= second - self.window_seconds
        if not keep.all():
            self._seconds, self._online = self._seconds[keep], self._online[keep]
            self._batch, self._fraud = self._batch[keep], self._fraud[keep]
        frauds = int(self._fraud.sum())
        if max(self.min_frauds, 1) <= frauds < len(self._fraud):
            self.chosen = best_blend(self._fraud, self._online, self._batch, self.choices)
        self._next = second + self.every_seconds
        self._chosen_at = second
        return self.chosen
