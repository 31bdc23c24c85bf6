"""Batch models: scikit-learn classifiers trained on a window of labelled vectors, served behind
the online learner's interface so that the detector can score with them as champion or as a
shadow challenger.

A batch model does not learn online: `BatchLearner.learn` is a no-op that counts nothing, so its
version stays the registered one (``m000031+0``) for as long as it serves. It is replaced by the
next retrain, never updated in place.

Class imbalance is handled by weighting: a fraud counts ``positive_weight`` times a legitimate
example (``"balanced"``: the ratio of legitimate to fraudulent examples in the window). Weighting
multiplies the model's odds by that weight, so scores are divided back by it (a prior-shift
correction): the ranking, hence AP and Card Precision@k, is the weighted model's, while the
scores stay probabilities that the alert threshold can be read against.

Training is deterministic: a fixed seed, the rows in the order given, one OpenMP thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.explain import FeatureVector, ReasonCode
from models.learners import OnlineLearner
from models.tree_rows import FlatTrees

Algorithm = Literal["hgb", "logistic"]
ALGORITHMS: tuple[Algorithm, ...] = ("hgb", "logistic")
Matrix = npt.NDArray[np.float64]

OCCLUSION_CANDIDATES = 6
"""Features occluded to explain a tree model's score: the most unusual ones (as in
`models.explain.OcclusionExplainer`), all predicted in one call."""

_HGB_DEFAULTS: Mapping[str, Any] = {"max_iter": 200, "learning_rate": 0.1}
_LOGISTIC_DEFAULTS: Mapping[str, Any] = {"C": 1.0, "max_iter": 1000}


@dataclass(frozen=True)
class LinearWeights:
    """A fitted logistic regression as the numbers scoring reads: one weight per standardised
    feature and the intercept.

    Kept instead of scikit-learn's estimator, so that a logistic batch model is saved and
    loaded as plain arrays, with no scikit-learn class to trust when it is unpickled.
    """

    weights: Matrix
    intercept: float


class BatchTrainingError(ValueError):
    """The window cannot train a model: too few labels, or a single class."""


@dataclass(frozen=True)
class BatchSpec:
    """What to train: the algorithm, its scikit-learn parameters, the weighting and the seed."""

    algorithm: Algorithm = "hgb"
    params: Mapping[str, Any] = field(default_factory=dict)
    positive_weight: float | Literal["balanced"] = "balanced"
    seed: int = 0
    min_labels: int = 1_000
    min_frauds: int = 10

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown batch algorithm {self.algorithm!r}; choose {' or '.join(ALGORITHMS)}"
            )
        weight = self.positive_weight
        if weight != "balanced" and not (isinstance(weight, float | int) and weight > 0):
            raise ValueError("positive_weight must be positive or 'balanced'")

    @property
    def learner_name(self) -> str:
        return f"batch-{self.algorithm}"

    def resolved_params(self) -> dict[str, Any]:
        defaults = _HGB_DEFAULTS if self.algorithm == "hgb" else _LOGISTIC_DEFAULTS
        return {**defaults, **dict(self.params)}


class BatchLearner(OnlineLearner):
    """A trained classifier (scikit-learn's gradient boosting, or logistic `LinearWeights`)
    with the online learner's attributes and calls.

    Built by `train_batch`. Scores name its version like any learner's; ``learn`` does nothing
    (a batch model is retrained, not updated), so ``labels_learned`` stays the size of the
    window it was trained on.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2_000, 2))
    >>> y = x[:, 0] + 0.3 * rng.normal(size=2_000) > 2.0
    >>> model = train_batch(x, y, ["amount", "night"], BatchSpec("logistic", min_labels=10))
    >>> model.score({"amount": 3.0, "night": 0.0}) > model.score({"amount": 0.0, "night": 0.0})
    True
    >>> before = model.version
    >>> model.learn({"amount": 3.0, "night": 0.0}, is_fraud=True)
    >>> model.version == before, model.labels_learned == 2_000
    (True, True)
    >>> model.score_and_explain({"amount": 3.0, "night": 0.0}, top=1)[1][0].feature
    'amount'
    """

    # Not calling OnlineLearner.__init__: there is no river recipe to build.
    def __init__(
        self,
        spec: BatchSpec,
        model: Any,
        feature_names: Sequence[str],
        means: Matrix,
        scales: Matrix,
        positive_weight: float,
        labels: int,
        frauds: int,
    ) -> None:
        self.name = spec.learner_name
        self.params: dict[str, Any] = {
            **spec.resolved_params(),
            "positive_weight": spec.positive_weight,
        }
        self.seed = spec.seed
        self.algorithm: Algorithm = spec.algorithm
        self.model = model
        self.feature_names = tuple(feature_names)
        self._means = means
        self._scales = scales
        self._odds_factor = 1.0 / positive_weight
        self.labels_learned = labels
        self.frauds_learned = frauds
        self.lineage = self.name
        self.lineage_labels = labels

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the flat trees: they are derived from the model, and remade on first
        use at a fraction of what they would add to every snapshot and publication."""
        state = dict(self.__dict__)
        state.pop("_flat_trees", None)
        return state

    def _trees(self) -> FlatTrees:
        """The tree model's nodes as flat arrays, which score one row far faster than
        scikit-learn's per-tree calls (`models.tree_rows`). Made on first use, so a model
        saved without them gets them too."""
        trees: FlatTrees | None = self.__dict__.get("_flat_trees")
        if trees is None:
            trees = self._flat_trees = FlatTrees.of(self.model)
        return trees

    @property
    def means(self) -> Matrix:
        """Each feature's training mean: what a vector lacking that feature is scored with."""
        return self._means

    # --- scoring -------------------------------------------------------------------------

    def _row(self, features: FeatureVector) -> Matrix:
        means = self._means
        return np.array(
            [[features.get(name, means[i]) for i, name in enumerate(self.feature_names)]],
            dtype=np.float64,
        )

    def predict_many(self, matrix: Matrix) -> Matrix:
        """Fraud probabilities of many vectors (rows in `feature_names` order), each exactly
        the score `score` gives that vector alone."""
        if self.algorithm == "logistic":
            linear: LinearWeights = self.model
            # Row by row along the contiguous axis: a row's sum does not depend on the batch.
            logits = (((matrix - self._means) / self._scales) * linear.weights).sum(axis=1)
            raw = 1.0 / (1.0 + np.exp(-(logits + linear.intercept)))
        else:
            raw = self._trees().predict_proba(np.asarray(matrix, dtype=np.float64))
        # Undo the weighting's shift of the odds: p / (p + w (1 - p)) with w the fraud weight.
        corrected: Matrix = raw / (raw + (1.0 - raw) / self._odds_factor)
        return corrected

    def score(self, features: FeatureVector) -> float:
        """The probability that the transaction is fraud."""
        return float(self.predict_many(self._row(features))[0])

    def score_and_explain(
        self, features: FeatureVector, top: int = 3
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        """The score and the (at most ``top``) features that pushed it up the most.

        Logistic: each feature's exact share of the log-odds (weight times standardised
        value). Trees: occlusion of the most unusual features, set to their training mean, all
        in one prediction call.
        """
        row = self._row(features)
        if top <= 0:
            return float(self.predict_many(row)[0]), ()
        standardised = (row[0] - self._means) / self._scales
        names = self.feature_names
        if self.algorithm == "logistic":
            probability = float(self.predict_many(row)[0])
            pushes = (standardised * self.model.weights).tolist()
            return probability, _strongest(names, pushes, row[0], top)
        unusual = np.argsort(-np.abs(standardised), kind="stable")[:OCCLUSION_CANDIDATES]
        occluded = np.repeat(row, len(unusual) + 1, axis=0)
        for slot, index in enumerate(unusual, start=1):
            occluded[slot, index] = self._means[index]
        predictions = self.predict_many(occluded)
        probability = float(predictions[0])
        pushes = [0.0] * len(names)
        for slot, index in enumerate(unusual, start=1):
            pushes[index] = probability - float(predictions[slot])
        return probability, _strongest(names, pushes, row[0], top)

    def learn(self, features: FeatureVector, is_fraud: bool) -> None:
        """Nothing: a batch model is retrained on a window, never updated one label at a time.

        Labels are not counted either, so its version keeps naming what it was trained on.
        """

    def learn_kept(self, names: Sequence[str], values: Sequence[float], is_fraud: bool) -> None:
        """Nothing, as `learn`."""


def _strongest(
    names: Sequence[str], pushes: list[float], values: Matrix, top: int
) -> tuple[ReasonCode, ...]:
    """The ``top`` positive pushes, largest first; ties keep the order of ``names``."""
    order = sorted(range(len(names)), key=lambda index: -pushes[index])
    return tuple(
        ReasonCode(names[index], float(values[index]), pushes[index])
        for index in order[:top]
        if pushes[index] > 0
    )


def train_batch(
    x: Matrix,
    y: npt.ArrayLike,
    feature_names: Sequence[str],
    spec: BatchSpec,
) -> BatchLearner:
    """Train ``spec`` on the rows ``x`` (columns in ``feature_names`` order) and labels ``y``.

    Raises `BatchTrainingError` when the rows are fewer than ``spec.min_labels`` or hold fewer
    than ``spec.min_frauds`` frauds or no legitimate example. Same rows, same spec: the same
    model, bit for bit.
    """
    labels = np.asarray(y, dtype=bool)
    matrix = np.ascontiguousarray(x, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise ValueError(f"x must have {len(feature_names)} columns, one per feature name")
    if len(labels) != len(matrix):
        raise ValueError("x and y must have the same number of rows")
    frauds = int(labels.sum())
    if len(labels) < spec.min_labels:
        raise BatchTrainingError(
            f"too few labels in the training window: {len(labels)} (at least {spec.min_labels})"
        )
    if frauds < spec.min_frauds or frauds == len(labels):
        raise BatchTrainingError(
            f"the training window holds {frauds} frauds among {len(labels)} labels "
            f"(at least {spec.min_frauds} frauds and one legitimate example are needed)"
        )
    weight = (
        (len(labels) - frauds) / frauds
        if spec.positive_weight == "balanced"
        else float(spec.positive_weight)
    )
    weights = np.where(labels, weight, 1.0)
    means = matrix.mean(axis=0)
    spread = matrix.std(axis=0)
    scales = np.where(spread > 0, spread, 1.0)
    params = spec.resolved_params()
    model: Any
    # One OpenMP thread: the scorer keeps the other cores, and threads spinning on a busy
    # machine made fits many times slower (see notebooks/02); the model does not change.
    with threadpool_limits(limits=1, user_api="openmp"):
        if spec.algorithm == "hgb":
            model = HistGradientBoostingClassifier(random_state=spec.seed, **params)
            model.fit(matrix, labels, sample_weight=weights)
        else:
            fitted = LogisticRegression(random_state=spec.seed, **params)
            fitted.fit((matrix - means) / scales, labels, sample_weight=weights)
            model = LinearWeights(fitted.coef_[0].copy(), float(fitted.intercept_[0]))
    return BatchLearner(spec, model, feature_names, means, scales, weight, len(labels), frauds)
