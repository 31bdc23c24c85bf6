"""A logistic regression over a nonlinear basis: each feature's standardised value and its
quantile bin.

A linear score is monotonic in each feature, so it cannot rank both very small and very large
amounts as risky: learning a new pattern of tiny payments pulls the amount weight down and
forgets the large-amount fraud. Here every feature also falls into one of a fixed set of bins
(edges at quantiles of the first labelled vectors), and each bin has a weight of its own, so a
feature's effect on the log-odds can take any shape, learned online, with one weight lookup
per feature. The score stays a sum of per-feature terms, which keeps reason codes exact: a
feature's push is its term for this transaction minus its term at the feature's mean.

A feature with a long tail can be standardised on a log scale (``log_scaled``): the seconds
since a card's previous payment run to 30 days where most are hours, so a card's first payment
in a month sits some thirty standard deviations out, and its weight times that outweighs every
other feature; on the log scale it sits a few out. Its bins read the value itself.

Edges are frozen once ``warm_up`` labelled vectors, ``warm_up_frauds`` of them frauds, have
been seen: a bin's weight keeps one meaning for the life of the model. Before that the model is a
plain scaled logistic regression.
Quantiles place edges where the values are; with ``label_cuts`` the warm-up's labels add edges
where the fraud rate changes sharply (a rule such as "every amount above 220 is fraud" sits
between two quantiles, and a bin straddling it mixes its frauds with legitimate payments).

With ``adaptive`` steps each weight moves by the learning rate over the root of its own summed
squared gradients (AdaGrad): the bin of a fraud pattern never seen before has had only the small
gradients of legitimate payments, so its first frauds move it far, while a weight that many
labels have pushed settles and is not dragged away by the new pattern.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from river import base

from models.binned_records import (
    SAVED_TABLES,
    UNSEEN,
    CrossRecord,
    FeatureRecord,
    Plan,
    from_tables,
    signed_exp,
    signed_log,
    to_tables,
)
from models.explain import FeatureVector, ReasonCode, strongest
from models.label_cuts import label_cuts as cuts_from_labels

DEFAULT_QUANTILES: tuple[float, ...] = (
    0.001,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.98,
    0.99,
    0.995,
    0.999,
)
"""Finer in the tails, where fraud lives: the top and bottom tenth of a percent get a bin."""

DEFAULT_CROSS_QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
"""Nine coarse bins a side, 81 cells a cross: fine enough that a new pattern's corner (tiny
amounts at terminals new to the card) is a cell of its own rather than a share of a wide one."""

_MAX_LOG_ODDS = 35.0

WARM_UP_LIMIT = 10
"""The warm-up ends after this many times ``warm_up`` labels even short of ``warm_up_frauds``
frauds: a stream that has almost no fraud still gets its bins."""

_ADAPTIVE_FLOOR = 0.01
"""Added to each weight's summed squared gradients: a fresh weight's first step stays below one
learning rate, and a legitimate payment's tiny gradient is not scaled up to a full step."""


def _sigmoid(log_odds: float) -> float:
    clipped = _MAX_LOG_ODDS if log_odds > _MAX_LOG_ODDS else max(log_odds, -_MAX_LOG_ODDS)
    return 1.0 / (1.0 + math.exp(-clipped))


class BinnedLogisticRegression(base.Classifier):
    """Logistic regression (SGD) over standardised values and quantile-bin indicators.

    Parameters
    ----------
    learning_rate
        Step size of every weight and of the intercept.
    l2
        L2 penalty on the weights.
    positive_weight
        A fraud counts this many times a legitimate example in the loss.
    quantiles
        Where the bin edges go, as quantiles of the warm-up values (duplicates merge, so a
        binary feature gets two bins).
    warm_up
        Labelled vectors whose values set the edges; the edges are fixed from then on.
    warm_up_frauds
        Frauds the warm-up also waits for (up to `WARM_UP_LIMIT` times ``warm_up`` labels):
        edges from the labels are only as good as the frauds behind them, and a stream's
        first days may hold almost none.
    crosses
        Pairs of features whose joint bins get a weight of their own (coarse bins, at
        ``cross_quantiles``): an interaction no sum of per-feature terms can express, such as
        a large amount that is also unusual for the card. A pair's weight is shared between
        its two features in reason codes.
    cross_quantiles
        Where the coarse edges of crossed features go.
    adaptive
        Scale each weight's step by the root of its summed squared gradients (see the module).
    label_cuts
        Up to this many more edges per feature, where the warm-up's labels say the fraud rate
        changes most (see `models.label_cuts`); 0 keeps the quantile edges alone.
    log_scaled
        Features whose standardised value is taken of ``sign(v) * log(1 + |v|)`` instead of
        ``v`` (see the module); their mean, for reason codes, is the mean on that scale.

    Examples
    --------
    Fraud at both ends of the amount range, which no weight on the amount alone can rank:

    >>> import random
    >>> rng = random.Random(1)
    >>> model = BinnedLogisticRegression(learning_rate=0.1, warm_up=500)
    >>> for _ in range(6_000):
    ...     amount = rng.uniform(0, 400)
    ...     model.learn_one({"amount": amount}, amount < 20 or amount > 380)
    >>> low, middle, high = (model.predict_proba_one({"amount": a})[True] for a in (5, 200, 395))
    >>> low > middle < high
    True
    """

    def __init__(
        self,
        learning_rate: float = 0.05,
        l2: float = 0.0,
        positive_weight: float = 1.0,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        warm_up: int = 10_000,
        crosses: Sequence[tuple[str, str]] = (),
        cross_quantiles: Sequence[float] = DEFAULT_CROSS_QUANTILES,
        adaptive: bool = False,
        label_cuts: int = 0,
        warm_up_frauds: int = 0,
        log_scaled: Sequence[str] = (),
    ) -> None:
        for name, count in (("label_cuts", label_cuts), ("warm_up_frauds", warm_up_frauds)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more, got {count!r}")
        self.learning_rate = learning_rate
        self.l2 = l2
        self.positive_weight = positive_weight
        self.quantiles = tuple(quantiles)
        self.warm_up = warm_up
        self.crosses = tuple((str(first), str(second)) for first, second in crosses)
        self.cross_quantiles = tuple(cross_quantiles)
        self.adaptive = adaptive
        self.label_cuts = label_cuts
        self.warm_up_frauds = warm_up_frauds
        self.log_scaled = tuple(str(name) for name in log_scaled)
        self._warming: dict[str, list[float]] | None = {}
        self._warming_labels: dict[str, list[bool]] = {}
        """Each warming feature's labels, beside its values in ``_warming``."""
        self._seen = 0
        self._frauds_seen = 0
        """Frauds among the warm-up's labels."""
        self._intercept = 0.0
        self._intercept_squares = 0.0
        self._features: dict[str, FeatureRecord] = {}
        self._crosses: tuple[CrossRecord, ...] = ()
        self._plan: Plan | None = None
        self._placed = False
        """Every binned feature's ``average_bin`` and every cross's ``average_cell`` hold."""

    # --- saving ----------------------------------------------------------------------------
    # A saved model is the records' tables by name (`models.binned_records.to_tables`).

    def __getstate__(self) -> dict[str, Any]:
        state = {name: value for name, value in self.__dict__.items() if name not in _RUNTIME}
        state.update(to_tables(self._features.values(), self._crosses, self.adaptive))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model saved before adaptive steps, label cuts, the warm-up's fraud count or log
        # scales existed goes on learning as it did.
        state = dict(state)
        state.setdefault("adaptive", False)
        state.setdefault("_squares", {})
        state.setdefault("_intercept_squares", 0.0)
        state.setdefault("label_cuts", 0)
        state.setdefault("_warming_labels", {})
        state.setdefault("warm_up_frauds", 0)
        state.setdefault("_frauds_seen", 0)
        state.setdefault("log_scaled", ())
        tables = {name: state.pop(name) for name in SAVED_TABLES}
        for cache in ("_average", "_positions"):  # kept by models saved before the records
            state.pop(cache, None)
        self.__dict__.update(state)
        self._features, self._crosses = from_tables(tables, self.log_scaled)
        self._plan = None
        self._placed = False

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the weights: ``name`` for a standardised value, ``name#i`` for bin i,
        ``a&b#i,j`` for cell (i, j) of a cross."""
        tables = to_tables(self._features.values(), self._crosses, self.adaptive)
        return dict(tables["_weights"])

    @property
    def intercept(self) -> float:
        return self._intercept

    @property
    def edges(self) -> dict[str, list[float]]:
        """Each feature's bin edges (empty until the warm-up ends): bin i is ``edges[i-1] <=
        value < edges[i]``."""
        return {
            feature.name: list(feature.cuts)
            for feature in self._features.values()
            if feature.cuts is not None
        }

    def _plan_of(self, x: FeatureVector) -> Plan:
        """The plan of ``x``'s order of names, kept for the last order seen."""
        plan = self._plan
        names = list(x)
        if plan is not None and plan.names == names:
            return plan
        return self._new_plan(names)

    def _new_plan(self, names: list[str]) -> Plan:
        features = self._features
        found = [features.get(name, UNSEEN) for name in names]
        position = {name: index for index, name in enumerate(names)}
        crosses = [
            (position.get(cross.first, -1), position.get(cross.second, -1))
            for cross in self._crosses
        ]
        plan = self._plan = Plan(names, found, crosses, UNSEEN not in found)
        return plan

    # --- scoring ---------------------------------------------------------------------------

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        probability = _sigmoid(self.explain_log_odds(x)[0])
        return {False: 1.0 - probability, True: probability}

    def score_and_explain(self, x: FeatureVector, top: int) -> tuple[float, tuple[ReasonCode, ...]]:
        """The fraud probability and the ``top`` features that pushed it up most.

        A feature's push is exact: its terms in the log-odds (weight times standardised value,
        plus its bin's weight) minus the same terms at the feature's mean (`centres`), so the
        log-odds is the score of an all-average transaction plus the sum of the pushes.
        """
        log_odds, pushes, names = self._read(x)
        probability = _sigmoid(log_odds)
        if top <= 0:
            return probability, ()
        return probability, strongest(names, pushes, x, top)

    def log_odds(self, x: FeatureVector) -> float:
        return self._read(x)[0]

    def explain_log_odds(self, x: FeatureVector) -> tuple[float, list[float]]:
        """The log-odds and each feature's push (in ``x``'s order), not ranked."""
        log_odds, pushes, _ = self._read(x)
        return log_odds, pushes

    def _read(self, x: FeatureVector) -> tuple[float, list[float], list[str]]:
        """The log-odds, each feature's push and the names they are in the order of."""
        plan = self._plan_of(x)
        if not self._placed:
            self._place_means()
        terms: list[float] = []
        pushes: list[float] = []
        term, push = terms.append, pushes.append
        for feature, value in zip(plan.features, x.values()):  # noqa: B905 (one vector)
            scale = feature.scale
            if scale is None:
                term(0.0)
                push(0.0)
                continue
            scaled = signed_log(value) if feature.logged else value
            total = feature.weight * (scaled - feature.mean) * scale
            cuts = feature.cuts
            if cuts is None:
                term(total)
                push(total)
                continue
            bins = feature.bins
            total += bins[bisect_right(cuts, value)]
            term(total)
            push(total - bins[feature.average_bin])
        log_odds = self._intercept + math.fsum(terms)
        if self._crosses:
            crossed: list[float] = []
            get = x.get
            for cross, (first, second) in zip(self._crosses, plan.crosses):  # noqa: B905
                a, b = get(cross.first), get(cross.second)
                if a is None or b is None:
                    crossed.append(0.0)
                    continue
                weights = cross.weights
                value = weights[
                    bisect_right(cross.first_coarse, a) * cross.columns
                    + bisect_right(cross.second_coarse, b)
                ]
                crossed.append(value)
                half = (value - weights[cross.average_cell]) / 2
                pushes[first] += half
                pushes[second] += half
            log_odds += math.fsum(crossed)
        return log_odds, pushes, plan.names

    def _place_means(self) -> None:
        """Set the bin and cross cell of each feature's mean, and how far each mean may move
        before they change (to the nearest fine or coarse edge): every push subtracts the
        terms at the mean, and the means move by a label's share at a time."""
        for feature in self._features.values():
            cuts = feature.cuts
            if cuts is None:
                continue
            centre = feature.centre()
            index = feature.average_bin = bisect_right(cuts, centre)
            low, high = _around(cuts, index)
            coarse = feature.coarse
            if coarse is not None:
                coarse_low, coarse_high = _around(coarse, bisect_right(coarse, centre))
                low, high = max(low, coarse_low), min(high, coarse_high)
            feature.low, feature.high = low, high
        features = self._features
        for cross in self._crosses:
            cross.average_cell = bisect_right(
                cross.first_coarse, features[cross.first].centre()
            ) * cross.columns + bisect_right(cross.second_coarse, features[cross.second].centre())
        self._placed = True

    def centres(self) -> dict[str, float]:
        """Each feature's mean as a value of the feature (back from the log scale for a
        ``log_scaled`` one): where its push is zero."""
        return {name: feature.centre() for name, feature in self._features.items()}

    # --- learning --------------------------------------------------------------------------

    def learn_one(self, x: dict[Any, Any], y: base.typing.ClfTarget, **kwargs: Any) -> None:
        self.learn_pairs(x.items(), bool(y))

    def learn_pairs(
        self, pairs: Iterable[tuple[str, float]], is_fraud: bool, offset: float = 0.0
    ) -> None:
        """`learn_one` on (name, value) pairs: a kept vector is learned without a dict.

        ``offset`` is added to the log-odds before the loss: the model then learns what another
        model's log-odds leaves to explain.
        """
        values = dict(pairs)
        plan = self._plan_of(values)
        if not plan.complete:
            plan = self._add_features(plan)
        sqrt = math.sqrt
        warming, warming_labels = self._warming, self._warming_labels
        placed = self._placed
        # The active inputs, summed into the log-odds as they are found: each feature's
        # standardised value (its record, the value) and its bin and the crosses' cells
        # (weights, squares, index: each an input of 1).
        log_odds = self._intercept + offset
        standardised: list[tuple[FeatureRecord, float]] = []
        indicators: list[tuple[list[float], list[float], int]] = []
        add, indicate = standardised.append, indicators.append
        for feature, value in zip(plan.features, values.values()):  # noqa: B905 (one vector)
            count = feature.count = feature.count + 1
            logged = feature.logged
            scaled = signed_log(value) if logged else value
            old_mean = feature.mean
            mean = feature.mean = old_mean + (scaled - old_mean) / count
            variance = feature.variance
            variance = feature.variance = (
                variance + ((scaled - old_mean) * (scaled - mean) - variance) / count
            )
            if variance > 0:
                scale = feature.scale = 1.0 / sqrt(variance)
                input_ = (scaled - mean) * scale
                add((feature, input_))
                log_odds += feature.weight * input_
            cuts = feature.cuts
            if cuts is not None:
                bins = feature.bins
                index = bisect_right(cuts, value)
                indicate((bins, feature.bin_squares, index))
                log_odds += bins[index]
                if placed:
                    centre = signed_exp(mean) if logged else mean
                    placed = feature.low <= centre < feature.high
            elif warming is not None:
                warming.setdefault(feature.name, []).append(value)
                warming_labels.setdefault(feature.name, []).append(is_fraud)
        self._placed = placed
        if self._crosses:
            log_odds = self._cross_inputs(values, log_odds, indicators)
        # The log loss's gradient in the log-odds, a fraud weighted `positive_weight` times.
        gradient = _sigmoid(log_odds) - 1.0 if is_fraud else _sigmoid(log_odds)
        if is_fraud:
            gradient *= self.positive_weight
        if self.adaptive:
            self._step_adaptively(standardised, indicators, gradient)
        else:
            self._step(standardised, indicators, gradient)
        if warming is not None:
            self._count_warming(warming, is_fraud)

    def _cross_inputs(
        self,
        values: FeatureVector,
        log_odds: float,
        indicators: list[tuple[list[float], list[float], int]],
    ) -> float:
        """Add each cross's cell of ``values`` to ``indicators`` and its weight to
        ``log_odds``, one at a time (the order of a float sum is its value)."""
        known, indicate = values.get, indicators.append
        for cross in self._crosses:
            a, b = known(cross.first), known(cross.second)
            if a is not None and b is not None:
                weights = cross.weights
                index = bisect_right(cross.first_coarse, a) * cross.columns + bisect_right(
                    cross.second_coarse, b
                )
                indicate((weights, cross.squares, index))
                log_odds += weights[index]
        return log_odds

    def _add_features(self, plan: Plan) -> Plan:
        """Records for the plan's names never learned before, and the plan with them."""
        for name, feature in zip(plan.names, plan.features, strict=True):
            if feature is UNSEEN:
                self._features[name] = FeatureRecord(name, name in self.log_scaled)
        return self._new_plan(plan.names)

    def _count_warming(self, warming: dict[str, list[float]], is_fraud: bool) -> None:
        self._seen += 1
        self._frauds_seen += is_fraud
        if self._warmed_up():
            self._freeze(warming)

    def _warmed_up(self) -> bool:
        if self._seen >= self.warm_up * WARM_UP_LIMIT:
            return True
        return self._seen >= self.warm_up and self._frauds_seen >= self.warm_up_frauds

    def _step(
        self,
        standardised: list[tuple[FeatureRecord, float]],
        indicators: list[tuple[list[float], list[float], int]],
        gradient: float,
    ) -> None:
        """One plain SGD step: every weight at the learning rate."""
        rate, l2 = self.learning_rate, self.l2
        self._intercept -= rate * gradient
        for feature, input_ in standardised:
            old = feature.weight
            feature.weight = old - rate * (gradient * input_ + l2 * old)
        for weights, _, index in indicators:
            old = weights[index]
            weights[index] = old - rate * (gradient + l2 * old)

    def _step_adaptively(
        self,
        standardised: list[tuple[FeatureRecord, float]],
        indicators: list[tuple[list[float], list[float], int]],
        gradient: float,
    ) -> None:
        """One AdaGrad step: each weight's step shrinks with the gradients it has had."""
        rate, l2, floor, sqrt = self.learning_rate, self.l2, _ADAPTIVE_FLOOR, math.sqrt
        self._intercept_squares += gradient * gradient
        self._intercept -= rate * gradient / sqrt(floor + self._intercept_squares)
        for feature, input_ in standardised:
            old = feature.weight
            step = gradient * input_ + l2 * old if l2 else gradient * input_
            total = feature.square = feature.square + step * step
            feature.weight = old - rate * step / sqrt(floor + total)
        if l2:
            for weights, squares, index in indicators:
                old = weights[index]
                step = gradient + l2 * old
                total = squares[index] = squares[index] + step * step
                weights[index] = old - rate * step / sqrt(floor + total)
            return
        # Without a penalty an indicator's step is the gradient itself.
        squared, rated = gradient * gradient, rate * gradient
        for weights, squares, index in indicators:
            total = squares[index] = squares[index] + squared
            weights[index] = weights[index] - rated / sqrt(floor + total)

    def _freeze(self, warming: dict[str, list[float]]) -> None:
        """Set every warmed-up feature's edges; a feature first seen later gets none."""
        features = self._features
        for name, values in warming.items():
            found = set(np.quantile(values, self.quantiles).tolist())
            labels = self._warming_labels.get(name, [])
            if self.label_cuts and len(labels) == len(values):
                found.update(cuts_from_labels(values, labels, self.label_cuts))
            feature = features[name]
            feature.cuts = sorted(found)
            feature.bins = [0.0] * (len(feature.cuts) + 1)
            feature.bin_squares = [0.0] * len(feature.bins)
        crosses = [(a, b) for a, b in self.crosses if a in warming and b in warming]
        coarse = {
            name: sorted(set(np.quantile(warming[name], self.cross_quantiles).tolist()))
            for name in {name for pair in crosses for name in pair}
        }
        for name, edges in coarse.items():
            features[name].coarse = edges
        self._crosses = tuple(CrossRecord(a, b, coarse[a], coarse[b]) for a, b in crosses)
        self._warming = None
        self._warming_labels = {}
        self._plan = None
        self._placed = False


_RUNTIME = ("_features", "_crosses", "_plan", "_placed")
"""What a saved model leaves out: built again from its tables on loading."""


def _around(cuts: Sequence[float], index: int) -> tuple[float, float]:
    """The range of bin ``index`` of ``cuts``: ``low <= value < high``."""
    low = cuts[index - 1] if index > 0 else -math.inf
    high = cuts[index] if index < len(cuts) else math.inf
    return low, high


class ExplainsItself(Protocol):
    """A model that scores with exact reasons and learns from (name, value) pairs."""

    def score_and_explain(
        self, x: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]: ...

    def learn_pairs(self, pairs: Iterable[tuple[str, float]], is_fraud: bool) -> None: ...


class BinnedExplainer:
    """The service's calls on a `BinnedLogisticRegression` (or a model built on one, such as
    `models.boosted.BoostedBinnedLogisticRegression`): it explains itself exactly."""

    def __init__(self, model: ExplainsItself) -> None:
        self._model = model

    def score(self, features: FeatureVector) -> float:
        return self._model.score_and_explain(features, 0)[0]

    def score_and_explain(
        self, features: FeatureVector, top: int
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        return self._model.score_and_explain(features, top)

    def learn(self, features: FeatureVector) -> None:
        """Nothing to keep: the model tracks the means itself."""

    def learn_labelled(self, features: Iterable[tuple[str, float]], is_fraud: bool) -> None:
        self._model.learn_pairs(features, is_fraud)
