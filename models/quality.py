"""Each model's quality on matured labels, over a rolling window: what promotion is judged on.

A label "matures" when it arrives; the score the model gave that transaction at arrival (kept
with its vector) is then paired with it. The champion and every shadow challenger scored the
same transactions, so their windows hold the same labels and their figures compare fairly. The
figures are the evaluation's own (`models.metrics`): average precision, Card Precision@k by
the day the transactions happened, and the precision of the alerts the threshold would raise.
They are computed when asked for (a scrape, `GET /v1/models`), never on the hot path.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from models.metrics import average_precision, card_precision_at_k, threshold_alert_metrics


class MaturedLabel(NamedTuple):
    """A label paired with the score one model gave its transaction at arrival."""

    second: int
    """Event time of the transaction, in epoch seconds."""
    card_id: str
    score: float
    is_fraud: bool
    labelled_second: int
    """When the label became known, in epoch seconds."""


@dataclass(frozen=True)
class QualityFigures:
    matured: int
    """Labels in the window the figures are taken over."""
    frauds: int
    average_precision: float
    card_precision_at_k: float
    alert_precision: float
    """Share of the transactions scored above the alert threshold that were fraud."""
    k: int

    def as_dict(self) -> dict[str, float]:
        return {
            "matured": float(self.matured),
            "average_precision": self.average_precision,
            f"card_precision_at_{self.k}": self.card_precision_at_k,
            "alert_precision": self.alert_precision,
        }


class RollingQuality:
    """The last ``window`` matured labels of one model.

    Examples
    --------
    >>> quality = RollingQuality(window=3, k=1)
    >>> for second, card, score, fraud in [(0, "a", 0.9, True), (0, "b", 0.2, False),
    ...                                    (86_400, "a", 0.1, False), (86_400, "c", 0.8, True)]:
    ...     quality.add(MaturedLabel(second, card, score, fraud, second + 3_600))
    >>> figures = quality.figures(threshold=0.5)
    >>> figures.matured, figures.average_precision, figures.alert_precision
    (3, 1.0, 1.0)
    """

    def __init__(self, window: int = 10_000, k: int = 100) -> None:
        self.window = window
        self.k = k
        self._labels: deque[MaturedLabel] = deque(maxlen=window)

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, label: MaturedLabel) -> None:
        self._labels.append(label)

    def figures(self, threshold: float) -> QualityFigures:
        labels = list(self._labels)
        frauds = sum(label.is_fraud for label in labels)
        if not labels:
            return QualityFigures(0, 0, math.nan, math.nan, math.nan, self.k)
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime([label.second for label in labels], unit="s", utc=True),
                "card_id": [label.card_id for label in labels],
                "score": [label.score for label in labels],
                "is_fraud": [label.is_fraud for label in labels],
                "label_known_at": pd.to_datetime(
                    [label.labelled_second for label in labels], unit="s", utc=True
                ),
            }
        )
        scores = frame["score"].to_numpy()
        truth = frame["is_fraud"].to_numpy()
        return QualityFigures(
            matured=len(labels),
            frauds=frauds,
            average_precision=average_precision(truth, scores) if frauds else math.nan,
            card_precision_at_k=card_precision_at_k(frame, self.k),
            alert_precision=threshold_alert_metrics(frame, threshold).precision,
            k=self.k,
        )
