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
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from river import preprocessing
from river.utils.math import sigmoid

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


_reason = ReasonCode._make
"""`ReasonCode` from a ready tuple: a third cheaper than its keyword-checking constructor, and
up to three are built for every transaction scored."""


def strongest(
    names: list[str], pushes: list[float], features: FeatureVector, top: int
) -> tuple[ReasonCode, ...]:
    """The ``top`` positive pushes, largest first; equal pushes keep the order of ``names``."""
    # Sorting the floats themselves and finding each winner's position is several times
    # cheaper than sorting positions by a key; it runs for every transaction scored.
    reasons: list[ReasonCode] = []
    after, previous = 0, 0.0
    for push in sorted(pushes, reverse=True)[:top]:
        if not push > 0:
            break
        # A push equal to the one before is the next of its value, further along.
        index = pushes.index(push, after if push == previous else 0)
        after, previous = index + 1, push
        name = names[index]
        reasons.append(_reason((name, features[name], push)))
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
    """Score and exact contributions of a ``scale | model`` logistic pipeline in one pass.

    Each feature is standardised with the pipeline's running mean and variance and multiplied
    by its weight; those products are the contributions, and the intercept plus their sum is
    the log-odds. Reading river's state directly does in one loop what its prediction plus an
    explanation would do in three; a test pins the result to river's own prediction.
    """

    def __init__(self, pipeline: Any) -> None:
        self._scaler: Any = pipeline["scale"]
        self._model: Any = pipeline["model"]

    def score(self, features: FeatureVector) -> float:
        return self.score_and_explain(features, top=0)[0]

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        means, variances = self._scaler.means, self._scaler.vars
        # One copy of the weights into a plain dict: looking each one up in river's own
        # vector, a Rust object, costs several times more than copying all of them.
        weight, variance_of = self._model.weights.get, variances.get
        pushes: list[float] = []
        push = pushes.append
        for name, value in features.items():
            variance = variance_of(name, 0.0)
            push(weight(name, 0.0) * (value - means[name]) / variance**0.5 if variance else 0.0)
        probability = float(sigmoid(self._model.intercept + math.fsum(pushes)))
        if top <= 0:
            return probability, ()
        return probability, strongest(list(features), pushes, features, top)

    def learn(self, features: FeatureVector) -> None:
        """Nothing to keep: the pipeline's scaler already tracks the means."""

    def learn_labelled(self, features: Iterable[tuple[str, float]], is_fraud: bool) -> None:
        """The pipeline's ``learn_one`` on a vector's (name, value) pairs: the scaler learns,
        then the model learns its output.

        River's `compose.Pipeline.learn_one` runs `StandardScaler.learn_one` and then
        `transform_one`, two loops over the features; this is the same arithmetic, operation
        for operation, in one loop on the scaler's own state, and without routing through the
        pipeline's plan on every label. A test pins counts, means, variances and weights to the
        pipeline's own, bit for bit.
        """
        scaler = self._scaler
        counts, means, variances = scaler.counts, scaler.means, scaler.vars
        scaled: FeatureVector = {}
        for name, value in features:
            count = counts[name] + 1
            counts[name] = count
            old_mean = means[name]
            mean = means[name] = old_mean + (value - old_mean) / count
            variance = variances[name]
            variance = variances[name] = (
                variance + ((value - old_mean) * (value - mean) - variance) / count
            )
            scaled[name] = (value - mean) / variance**0.5 if variance else 0.0
        self._model.learn_one(scaled, is_fraud)


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
        if top <= 0:
            return probability, ()
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
        return probability, strongest(names, pushes, features, top)

    def learn(self, features: FeatureVector) -> None:
        self._reference.learn_one(features)
