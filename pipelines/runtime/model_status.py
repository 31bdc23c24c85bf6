"""What `GET /v1/models`, the dashboard and the gauges show of each serving model."""

from __future__ import annotations

from dataclasses import dataclass

from models.detector import CHAMPION, FraudDetector
from models.quality import QualityFigures


@dataclass(frozen=True)
class ModelStatus:
    """A serving model as the API shows it: the champion or a shadow challenger."""

    name: str
    """The champion's learner name, or the challenger's name."""
    slot: str
    """Its key among the detector's quality windows: ``champion``, or the challenger's name."""
    role: str
    version: str
    learner: str
    params: dict[str, object]
    labels_learned: int
    frauds_learned: int
    quality: QualityFigures
    """Its figures over the rolling window of matured labels (``nan`` before any)."""

    @property
    def matured_labels(self) -> int:
        return self.quality.matured

    @property
    def rolling_average_precision(self) -> float:
        """AP of the scores these transactions got at arrival, against their matured labels."""
        return self.quality.average_precision


def model_statuses(detector: FraudDetector) -> list[ModelStatus]:
    """The champion, then each shadow challenger, with the quality this detector measured."""
    threshold = detector.alerting.threshold
    serving = [(CHAMPION, detector.learner), *detector.challengers.items()]
    return [
        ModelStatus(
            name=learner.name if role == CHAMPION else role,
            slot=role,
            role=CHAMPION if role == CHAMPION else "challenger",
            version=learner.version,
            learner=learner.name,
            params=dict(learner.params),
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            quality=detector.quality[role].figures(threshold),
        )
        for role, learner in serving
    ]
