"""Online learners, chosen by name and parameters.

Each learner is a river estimator built from a named recipe; `OnlineLearner` wraps it with the
three calls the service makes: `score`, `learn` and `explain`. Recipes keep river's own
parameter names so that river's documentation applies as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from river import compose, ensemble, forest, linear_model, optim, preprocessing, tree

from models.binned import (
    DEFAULT_CROSS_QUANTILES,
    DEFAULT_QUANTILES,
    BinnedExplainer,
    BinnedLogisticRegression,
)
from models.boosted import BoostedBinnedLogisticRegression
from models.explain import (
    Explainer,
    FeatureVector,
    LinearExplainer,
    OcclusionExplainer,
    ReasonCode,
)

DEFAULT_LEARNER = "binned"

RiverModel = Any
"""A river classifier or pipeline. River annotates inputs as ``dict[Hashable, Any]``, which a
``dict[str, float]`` cannot be passed as (``dict`` is invariant), so models are held untyped
here and called only through `OnlineLearner`."""


class LearnerError(ValueError):
    """An unknown learner name or parameter: a user error, reported without a traceback."""


def _logistic(params: Mapping[str, Any], _seed: int) -> RiverModel:
    # Class weighting lives in the loss: a fraud counts `positive_weight` times a legitimate one.
    loss = optim.losses.Log(weight_pos=params["positive_weight"])
    model = linear_model.LogisticRegression(
        optimizer=optim.SGD(params["learning_rate"]),
        loss=loss,
        l2=params["l2"],
        intercept_lr=params["learning_rate"],
    )
    scaler = preprocessing.StandardScaler()
    return compose.Pipeline(("scale", scaler), ("model", model))


FRAUD_CROSSES: tuple[tuple[str, str], ...] = (
    ("amount", "card_amount_to_avg_30d"),
    ("card_amount_to_avg_30d", "card_tx_count_30d"),
    ("terminal_fraud_rate_7d", "terminal_tx_count_7d"),
    ("terminal_fraud_rate_30d", "terminal_tx_count_30d"),
    ("amount", "card_terminal_first_use"),
    ("amount", "is_night"),
    ("card_avg_amount_1d", "card_avg_amount_30d"),
)
"""The binned learner's default crosses, of `models.features` names: an amount unusual for the
card (and how much history says so), a terminal's fraud rate with the traffic behind it, small
or large amounts at a terminal new to the card or at night, and a day's spending against the
month's. A pair whose features a vector lacks is skipped."""

LONG_TAILED: tuple[str, ...] = ("card_seconds_since_previous",)
"""Features the binned learner standardises on a log scale: the seconds since a card's
previous payment run to the 30-day cap where most are hours."""


def _binned(params: Mapping[str, Any], _seed: int) -> RiverModel:
    return BinnedLogisticRegression(**params)


def _boosted(params: Mapping[str, Any], seed: int) -> RiverModel:
    return BoostedBinnedLogisticRegression(seed=seed, **params)


def _forest(params: Mapping[str, Any], seed: int) -> RiverModel:
    # River's trees only split a leaf whose majority class is at most `max_share_to_split` of
    # it; with fraud under 1 % the default 0.99 means they never split at all.
    return forest.ARFClassifier(seed=seed, **params)


def _hoeffding(params: Mapping[str, Any], seed: int) -> RiverModel:
    return tree.HoeffdingAdaptiveTreeClassifier(seed=seed, **params)


def _bagging(params: Mapping[str, Any], seed: int) -> RiverModel:
    member = _logistic(params, seed)
    # ADWIN bagging resets members whose error drifts, so stale members are replaced.
    return ensemble.ADWINBaggingClassifier(member, n_models=params["n_models"], seed=seed)


@dataclass(frozen=True)
class LearnerRecipe:
    """How to build one named learner and which parameters it takes."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    build: Callable[[Mapping[str, Any], int], RiverModel]
    linear: bool
    """Reason codes are exact shares of the log-odds, read off the model's own state."""
    passthrough: bool = False
    """Parameters go to river's constructor as they are, which refuses unknown names itself."""


_LOGISTIC_DEFAULTS = {"learning_rate": 0.01, "l2": 0.0, "positive_weight": 1.0}
_BINNED_DEFAULTS = {
    "learning_rate": 0.5,
    "l2": 0.0,
    "positive_weight": 1.0,
    "quantiles": DEFAULT_QUANTILES,
    "warm_up": 10_000,
    "crosses": FRAUD_CROSSES,
    "cross_quantiles": DEFAULT_CROSS_QUANTILES,
    "adaptive": True,
    "label_cuts": 3,
    "warm_up_frauds": 50,
    "log_scaled": LONG_TAILED,
}

_BOOSTED_DEFAULTS = {
    **_BINNED_DEFAULTS,
    "window": 280_000,
    "legit_share": 0.1,
    "refit_every": 10_000,
    "install_after": 1_000,
    "trees": 40,
    "max_depth": 3,
    "tree_learning_rate": 0.3,
    "min_samples_leaf": 20,
    "stack_rate": 0.001,
}

RECIPES: Mapping[str, LearnerRecipe] = MappingProxyType(
    {
        recipe.name: recipe
        for recipe in (
            LearnerRecipe(
                "logistic",
                "standard-scaled logistic regression (SGD), class-weighted loss",
                _LOGISTIC_DEFAULTS,
                _logistic,
                linear=True,
            ),
            LearnerRecipe(
                "binned",
                "logistic regression (SGD) over standardised values and quantile-bin indicators",
                _BINNED_DEFAULTS,
                _binned,
                linear=True,
            ),
            LearnerRecipe(
                "forest",
                "Adaptive Random Forest (ADWIN-monitored Hoeffding trees)",
                {"n_models": 10, "max_share_to_split": 1.0},
                _forest,
                linear=False,
                passthrough=True,
            ),
            LearnerRecipe(
                "hoeffding",
                "Hoeffding Adaptive Tree",
                {"max_share_to_split": 1.0, "grace_period": 200},
                _hoeffding,
                linear=False,
                passthrough=True,
            ),
            LearnerRecipe(
                "bagging",
                "ADWIN bagging of scaled logistic regressions",
                {**_LOGISTIC_DEFAULTS, "n_models": 5},
                _bagging,
                linear=False,
            ),
            LearnerRecipe(
                "boosted",
                "binned logistic regression and shallow gradient-boosted trees it refits on its "
                "recent labels in the background, stacked online",
                _BOOSTED_DEFAULTS,
                _boosted,
                linear=True,
            ),
        )
    }
)


def resolve_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's defaults overridden by ``params``; unknown names are refused."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise LearnerError(f"unknown learner {name!r}; choose one of: {', '.join(RECIPES)}")
    given = dict(params or {})
    if not recipe.passthrough:
        unknown = sorted(set(given) - set(recipe.defaults))
        if unknown:
            raise LearnerError(
                f"learner {name!r} takes no parameter {', '.join(unknown)}; "
                f"it takes: {', '.join(sorted(recipe.defaults))}"
            )
    return {**recipe.defaults, **given}


_LEARN_PAIRS = (LinearExplainer, BinnedExplainer)
"""Explainers that learn the model themselves, from a vector's (name, value) pairs."""


def _explainer(model: RiverModel, linear: bool) -> Explainer:
    if isinstance(model, BinnedLogisticRegression | BoostedBinnedLogisticRegression):
        return BinnedExplainer(model)
    return LinearExplainer(model) if linear else OcclusionExplainer(model)


class OnlineLearner:
    """A named river classifier with the calls the service makes.

    Parameters
    ----------
    name
        A key of `RECIPES`.
    params
        Overrides of the recipe's defaults (river's parameter names).
    seed
        Seed for learners that draw random numbers.

    Examples
    --------
    >>> learner = OnlineLearner("logistic")
    >>> learner.learn({"amount": 250.0}, is_fraud=True)
    >>> learner.learn({"amount": 20.0}, is_fraud=False)
    >>> learner.score({"amount": 250.0}) > learner.score({"amount": 20.0})
    True
    >>> learner.labels_learned
    2
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        self.name = name
        self.params = resolve_params(name, params)
        self.seed = seed
        recipe = RECIPES[name]
        try:
            self.model = recipe.build(self.params, seed)
        except TypeError as error:
            raise LearnerError(f"learner {name!r}: {error}") from None
        self.explainer: Explainer = _explainer(self.model, recipe.linear)
        self.labels_learned = 0
        self.frauds_learned = 0
        self.lineage = name
        """What this learner grew from: its recipe, or the registry version it was restored as."""
        self.lineage_labels = 0
        """Labels it had learned when its lineage began."""

    @property
    def version(self) -> str:
        """The version its scores name: its lineage and the labels learned since.

        >>> learner = OnlineLearner("logistic")
        >>> learner.learn({"amount": 1.0}, is_fraud=False)
        >>> learner.version
        'logistic+1'
        >>> learner.rebase("m000007")
        >>> learner.version
        'm000007+0'
        """
        return f"{self.lineage}+{self.labels_learned - self.lineage_labels}"

    def rebase(self, lineage: str) -> None:
        """Start a new lineage here: restored from the registry, it names that version."""
        self.lineage = lineage
        self.lineage_labels = self.labels_learned

    def score(self, features: FeatureVector) -> float:
        """The probability that the transaction is fraud, as the learner stands now."""
        return self.explainer.score(features)

    def score_and_explain(
        self, features: FeatureVector, top: int = 3
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        """The score and the (at most ``top``) features that pushed it up the most."""
        return self.explainer.score_and_explain(features, top)

    def learn(self, features: FeatureVector, is_fraud: bool) -> None:
        """Update the learner with one labelled vector: the one it scored."""
        explainer = self.explainer
        if type(explainer) in _LEARN_PAIRS:
            explainer.learn_labelled(features.items(), is_fraud)  # type: ignore[attr-defined]
        else:
            self.model.learn_one(features, is_fraud)
            explainer.learn(features)
        self._count(is_fraud)

    def learn_kept(self, names: Sequence[str], values: Sequence[float], is_fraud: bool) -> None:
        """`learn` on a vector kept as its values in ``names`` order, as a pending entry keeps
        it: a linear learner reads the pairs as they are; the others get them as a dict.

        A vector of another length (kept under another feature schema) is refused before
        anything is learned from it.
        """
        if len(values) != len(names):
            raise ValueError(f"a kept vector of {len(values)} values for {len(names)} features")
        # Lengths checked above, so no `strict=`: Python 3.11 passes a keyword argument to zip
        # through a slow path, and this runs for every label.
        pairs = zip(names, values)  # noqa: B905
        explainer = self.explainer
        if type(explainer) in _LEARN_PAIRS:
            explainer.learn_labelled(pairs, is_fraud)  # type: ignore[attr-defined]
            self._count(is_fraud)
        else:
            self.learn(dict(pairs), is_fraud)

    def labels_known(self, second: int) -> None:
        """The labels learned so far arrived by event second ``second``: nothing to a learner
        that learns each label as it comes (`models.blended_learner` keeps them for its choice)."""

    def _count(self, is_fraud: bool) -> None:
        self.labels_learned += 1
        self.frauds_learned += is_fraud
