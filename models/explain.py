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
from typing import Any, NamedTuple, Protocol

from river import preprocessing

from models.schemas import Reason

FeatureVector = dict[str, float]


class ReasonCode(NamedTuple):
    """A feature that pushed a score up; becomes a contract `Reason` at the service's edge.

    A plain tuple on the hot path: one or more is built for every transaction scored.
    """

    feature: str
    value: float
    contribution: float

    def to_contract(self) -> Reason:
        return Reason(feature=self.feature, value=self.value, contribution=self.contribution)


def _strongest(
    names: list[str], pushes: list[float], features: FeatureVector, top: int
) -> tuple[ReasonCode, ...]:
    """The ``top`` positive pushes, largest first.

    Repeated ``max`` over a handful of floats beats sorting tuples: this runs on every score.
    """
    reasons: list[ReasonCode] = []
    for _ in range(min(top, len(pushes))):
        push = max(pushes)
        if push <= 0:
            break
        index = pushes.index(push)
        pushes[index] = -math.inf
        name = names[index]
        reasons.append(ReasonCode(name, features[name], push))
    return tuple(reasons)


class Explainer(Protocol):
    def score(self, features: FeatureVector) -> float: ...

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]: ...

    def learn(self, features: FeatureVector) -> None: ...


def _fraud_probability(model: Any, features: FeatureVector) -> float:
    return float(model.predict_proba_one(features).get(True, 0.0))


class LinearExplainer:
    """Exact contributions for a ``scale | model`` pipeline with a linear final step."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline: Any = pipeline
        self._scaler: Any = self._pipeline["scale"]
        self._model: Any = self._pipeline["model"]

    def score(self, features: FeatureVector) -> float:
        return _fraud_probability(self._pipeline, features)

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        # Scale once and reuse it: the same arithmetic as the pipeline's own prediction.
        scaled = self._scaler.transform_one(features)
        probability = _fraud_probability(self._model, scaled)
        # River's public `weights` copies the whole vector on every call; the live mapping is
        # only read here, and it is what river's own prediction multiplies by.
        weights = self._model._weights
        names = list(scaled)
        pushes = [weights.get(name, 0.0) * value for name, value in scaled.items()]
        return probability, _strongest(names, pushes, features, top)

    def learn(self, features: FeatureVector) -> None:
        """Nothing to keep: the pipeline's scaler already tracks the means."""


class OcclusionExplainer:
    """Model-agnostic contributions by setting the most unusual features to their mean."""

    def __init__(self, model: Any, candidates: int = 6) -> None:
        self._model: Any = model
        self._candidates = candidates
        self._reference: Any = preprocessing.StandardScaler()

    def score(self, features: FeatureVector) -> float:
        return _fraud_probability(self._model, features)

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        probability = self.score(features)
        means: Any = self._reference.means
        variances: Any = self._reference.vars
        unusual = heapq.nlargest(
            self._candidates,
            features,
            key=lambda name: (
                abs(features[name] - means.get(name, 0.0))
                / math.sqrt(variances.get(name, 0.0) or 1.0)
            ),
        )
        names = [name for name in unusual if name in means]
        pushes = [probability - self.score({**features, name: means[name]}) for name in names]
        return probability, _strongest(names, pushes, features, top)

    def learn(self, features: FeatureVector) -> None:
        self._reference.learn_one(features)
