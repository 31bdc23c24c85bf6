"""Reason codes: the few features that pushed a score up.

For a linear model the push of each feature is exact: its weight times its scaled value, i.e.
how far it moved the log-odds away from an average transaction. For any other model we use
occlusion, which needs nothing from the model but predictions: the features that are most
unusual for this transaction are set back to their running mean one at a time, and the drop in
score is that feature's push. It costs a few extra predictions per score, not one per feature.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Protocol

from river import preprocessing
from river.base import Classifier

from models.schemas import Reason

FeatureVector = dict[str, float]


class Explainer(Protocol):
    def score(self, features: FeatureVector) -> float: ...

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[Reason, ...]]: ...

    def learn(self, features: FeatureVector) -> None: ...


def _fraud_probability(model: Any, features: FeatureVector) -> float:
    return float(model.predict_proba_one(features).get(True, 0.0))


class LinearExplainer:
    """Exact contributions for a ``scale | model`` pipeline with a linear final step."""

    def __init__(self, pipeline: Classifier) -> None:
        self._pipeline: Any = pipeline
        self._scaler: Any = self._pipeline["scale"]
        self._model: Any = self._pipeline["model"]

    def score(self, features: FeatureVector) -> float:
        return _fraud_probability(self._pipeline, features)

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[Reason, ...]]:
        # Scale once and reuse it: the same arithmetic as the pipeline's own prediction.
        scaled = self._scaler.transform_one(features)
        probability = _fraud_probability(self._model, scaled)
        weights = self._model.weights
        pushes = [(weights.get(name, 0.0) * value, name) for name, value in scaled.items()]
        strongest = heapq.nlargest(top, pushes)
        reasons = tuple(
            Reason(feature=name, value=features[name], contribution=push)
            for push, name in strongest
            if push > 0
        )
        return probability, reasons

    def learn(self, features: FeatureVector) -> None:
        """Nothing to keep: the pipeline's scaler already tracks the means."""


class OcclusionExplainer:
    """Model-agnostic contributions by setting the most unusual features to their mean."""

    def __init__(self, model: Classifier, candidates: int = 6) -> None:
        self._model: Any = model
        self._candidates = candidates
        self._reference = preprocessing.StandardScaler()

    def score(self, features: FeatureVector) -> float:
        return _fraud_probability(self._model, features)

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[Reason, ...]]:
        probability = self.score(features)
        means: Any = self._reference.means
        variances: Any = self._reference.vars
        unusual = heapq.nlargest(
            self._candidates,
            features,
            key=lambda name: abs(features[name] - means.get(name, 0.0))
            / math.sqrt(variances.get(name, 0.0) or 1.0),
        )
        pushes = []
        for name in unusual:
            if name not in means:
                continue
            occluded = {**features, name: means[name]}
            pushes.append((probability - self.score(occluded), name))
        strongest = heapq.nlargest(top, pushes)
        reasons = tuple(
            Reason(feature=name, value=features[name], contribution=push)
            for push, name in strongest
            if push > 0
        )
        return probability, reasons

    def learn(self, features: FeatureVector) -> None:
        self._reference.learn_one(features)
