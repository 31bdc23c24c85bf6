"""What a replay with the retrain in the loop measured: the served scores, each part's, and
every retrain's decision (`pipelines.retrain.loop`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pandas as pd

from models.blend import Blend
from models.period_metrics import EvaluationMetrics

Served = Literal["champion", "batch", "blend"]


@dataclass(frozen=True)
class RetrainStep:
    """One scheduled retrain of the replay: its figures and decision, or why it failed."""

    at: datetime
    decision: str
    """``promote``, ``challenger``, ``blend W`` (the batch model's weight) or ``failed``."""
    detail: str = ""
    candidate_ap: float = float("nan")
    champion_ap: float = float("nan")
    candidate_cp: float = float("nan")
    champion_cp: float = float("nan")
    training_rows: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "decision": self.decision,
            "detail": self.detail,
            "candidate_holdout_ap": _finite(self.candidate_ap),
            "champion_holdout_ap": _finite(self.champion_ap),
            "candidate_holdout_cp": _finite(self.candidate_cp),
            "champion_holdout_cp": _finite(self.champion_cp),
            "training_rows": self.training_rows,
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


@dataclass(frozen=True)
class LoopRun:
    """The outcome: served scores measured, each part's beside them, each retrain."""

    served: Served
    metrics: EvaluationMetrics
    online_metrics: EvaluationMetrics
    batch_metrics: EvaluationMetrics
    scores: pd.DataFrame
    """One row per transaction: id, timestamp, card, served ``score``, ``online_score``,
    ``batch_score``, the ``blend`` served (its batch weight or ``either``; blend only), label,
    label known at."""
    steps: list[RetrainStep] = field(default_factory=list)
    blends: list[tuple[datetime, Blend]] = field(default_factory=list)
    """Each choice of the blend (blend only): when, and the blend."""
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "served": self.served,
            "transactions": len(self.scores),
            "seconds": round(self.seconds, 1),
            "retrains": [step.to_dict() for step in self.steps],
            "blends": [{"at": at.isoformat(), "blend": chosen} for at, chosen in self.blends],
            "online": self.online_metrics.to_dict(),
            "batch": self.batch_metrics.to_dict(),
        }
