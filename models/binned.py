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
from typing import Any, NamedTuple, Protocol

import numpy as np
from river import base

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

DEFAULT_CROSS_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9, 0.99)

_MAX_LOG_ODDS = 35.0

WARM_UP_LIMIT = 10
"""The warm-up ends after this many times ``warm_up`` labels even short of ``warm_up_frauds``
frauds: a stream that has almost no fraud still gets its bins."""

_ADAPTIVE_FLOOR = 0.01
"""Added to each weight's summed squared gradients: a fresh weight's first step stays below one
learning rate, and a legitimate payment's tiny gradient is not scaled up to a full step."""


def _signed_log(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def _signed_exp(value: float) -> float:
    """The inverse of `_signed_log`."""
    return math.copysign(math.expm1(abs(value)), value)


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
        self._counts: dict[str, int] = {}
        self._means: dict[str, float] = {}
        """Each feature's running mean, of its signed log for a ``log_scaled`` one."""
        self._variances: dict[str, float] = {}
        self._scales: dict[str, float] = {}
        """1 / standard deviation, kept beside the variance: a multiplication on the hot path."""
        self._warming: dict[str, list[float]] | None = {}
        self._warming_labels: dict[str, list[bool]] = {}
        """Each warming feature's labels, beside its values in ``_warming``."""
        self._seen = 0
        self._frauds_seen = 0
        """Frauds among the warm-up's labels."""
        self._edges: dict[str, list[float]] = {}
        self._bin_names: dict[str, tuple[str, ...]] = {}
        self._coarse: dict[str, list[float]] = {}
        self._cross_names: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = ()
        """(first feature, second feature, weight names by cell) of each cross, once frozen:
        cell (i, j) of a cross of ``a`` and ``b`` is named ``a&b#i,j``."""
        self._weights: dict[str, float] = {}
        self._intercept = 0.0
        self._squares: dict[str, float] = {}
        """Each weight's summed squared gradients, for adaptive steps."""
        self._intercept_squares = 0.0
        self._average: _AveragePlace | None = None
        """The bins and cross cells of the means (`_average_place`); not saved."""
        self._positions: tuple[list[str], list[tuple[int, int]]] | None = None
        """The crosses' positions in the last order of names explained; not saved."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_average"] = state["_positions"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model saved before adaptive steps, label cuts, the warm-up's fraud count or log
        # scales existed goes on learning as it did.
        state.setdefault("adaptive", False)
        state.setdefault("_squares", {})
        state.setdefault("_intercept_squares", 0.0)
        state.setdefault("label_cuts", 0)
        state.setdefault("_warming_labels", {})
        state.setdefault("warm_up_frauds", 0)
        state.setdefault("_frauds_seen", 0)
        state.setdefault("log_scaled", ())
        state["_average"] = state["_positions"] = None
        self.__dict__.update(state)

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the weights: ``name`` for a standardised value, ``name#i`` for bin i."""
        return dict(self._weights)

    @property
    def intercept(self) -> float:
        return self._intercept

    @property
    def edges(self) -> dict[str, list[float]]:
        """Each feature's bin edges (empty until the warm-up ends): bin i is ``edges[i-1] <=
        value < edges[i]``."""
        return {name: list(edges) for name, edges in self._edges.items()}

    # --- scoring ---------------------------------------------------------------------------

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        probability = self.score_and_explain(x, top=0)[0]
        return {False: 1.0 - probability, True: probability}

    def score_and_explain(self, x: FeatureVector, top: int) -> tuple[float, tuple[ReasonCode, ...]]:
        """The fraud probability and the ``top`` features that pushed it up most.

        A feature's push is exact: its terms in the log-odds (weight times standardised value,
        plus its bin's weight) minus the same terms at the feature's mean (`centres`), so the
        log-odds is the score of an all-average transaction plus the sum of the pushes.
        """
        log_odds, terms, crossed = self._terms(x)
        probability = _sigmoid(log_odds)
        if top <= 0:
            return probability, ()
        names = list(x)
        return probability, strongest(names, self.pushes(names, terms, crossed), x, top)

    def log_odds(self, x: FeatureVector) -> float:
        return self._terms(x)[0]

    def explain_log_odds(self, x: FeatureVector) -> tuple[float, list[float]]:
        """The log-odds and each feature's push (in ``x``'s order), not ranked."""
        log_odds, terms, crossed = self._terms(x)
        return log_odds, self.pushes(list(x), terms, crossed)

    def _terms(self, x: FeatureVector) -> tuple[float, list[float], list[float]]:
        """The log-odds, each feature's own terms and each cross's weight."""
        weight = self._weights.get
        means, scales, edges, bins = self._means, self._scales, self._edges, self._bin_names
        logged = self.log_scaled
        terms: list[float] = []
        term = terms.append
        for name, value in x.items():
            scale = scales.get(name)
            if scale is None:
                term(0.0)
                continue
            scaled = _signed_log(value) if name in logged else value
            total = weight(name, 0.0) * (scaled - means[name]) * scale
            cuts = edges.get(name)
            if cuts is not None:
                total += weight(bins[name][bisect_right(cuts, value)], 0.0)
            term(total)
        crossed = self._cross_weights(x) if self._cross_names else []
        return self._intercept + math.fsum(terms) + math.fsum(crossed), terms, crossed

    def pushes(self, names: list[str], terms: list[float], crossed: list[float]) -> list[float]:
        """Each feature's terms less the same terms at its mean, with half of each cross."""
        scales, weight = self._scales, self._weights.get
        average = self._average_place()
        bins = average.bins
        # `terms` is as long as `names` (both come from one vector): zip needs no `strict=`,
        # which Python 3.11 passes through a slow path.
        pushes = [
            (value - weight(bins[name], 0.0) if name in bins else value) if name in scales else 0.0
            for name, value in zip(names, terms)  # noqa: B905
        ]
        if crossed:
            for (first, second), value, cell in zip(
                self._cross_positions(names), crossed, average.cells, strict=True
            ):
                if first >= 0 and second >= 0:
                    half = (value - weight(cell, 0.0)) / 2
                    pushes[first] += half
                    pushes[second] += half
        return pushes

    def _cross_positions(self, names: list[str]) -> list[tuple[int, int]]:
        """Where each cross's two features sit in ``names`` (-1: absent), kept for the last
        order of names seen: every vector of a feature set has the same."""
        kept = self._positions
        if kept is not None and kept[0] == names:
            return kept[1]
        position = {name: index for index, name in enumerate(names)}
        found = [
            (position.get(first, -1), position.get(second, -1))
            for first, second, _ in self._cross_names
        ]
        self._positions = (list(names), found)
        return found

    def _cross_weights(self, x: dict[str, float]) -> list[float]:
        """Each cross's weight for ``x`` (0 for a cross whose features ``x`` lacks)."""
        weight, coarse = self._weights.get, self._coarse
        found: list[float] = []
        for first, second, cells in self._cross_names:
            a, b = x.get(first), x.get(second)
            if a is None or b is None:
                found.append(0.0)
                continue
            found.append(
                weight(cells[bisect_right(coarse[first], a)][bisect_right(coarse[second], b)], 0.0)
            )
        return found

    def _average_place(self) -> _AveragePlace:
        """Where an all-average transaction falls, kept while every mean stays in its bin."""
        place = self._average
        if place is None or not place.holds(self._means):
            place = self._average = self._place_means()
        return place

    def _place_means(self) -> _AveragePlace:
        """The bins and cross cells of the means now, and how far each mean may move before
        they change (to the nearest fine or coarse edge)."""
        centres = self.centres()
        bins: dict[str, str] = {}
        ranges: list[tuple[str, bool, float, float]] = []
        for name, cuts in self._edges.items():
            centre = centres[name]
            index = bisect_right(cuts, centre)
            bins[name] = self._bin_names[name][index]
            low, high = _around(cuts, index)
            coarse = self._coarse.get(name)
            if coarse is not None:
                coarse_low, coarse_high = _around(coarse, bisect_right(coarse, centre))
                low, high = max(low, coarse_low), min(high, coarse_high)
            ranges.append((name, name in self.log_scaled, low, high))
        coarse_of = self._coarse
        cells = tuple(
            cells[bisect_right(coarse_of[first], centres[first])][
                bisect_right(coarse_of[second], centres[second])
            ]
            for first, second, cells in self._cross_names
        )
        return _AveragePlace(bins, cells, tuple(ranges))

    def _centre(self, name: str) -> float:
        mean = self._means[name]
        return _signed_exp(mean) if name in self.log_scaled else mean

    def centres(self) -> dict[str, float]:
        """Each feature's mean as a value of the feature (back from the log scale for a
        ``log_scaled`` one): where its push is zero."""
        return {name: self._centre(name) for name in self._means}

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
        counts, means, variances, scales = self._counts, self._means, self._variances, self._scales
        edges, bins, weights = self._edges, self._bin_names, self._weights
        weight, sqrt = weights.get, math.sqrt
        warming, warming_labels = self._warming, self._warming_labels
        logged = self.log_scaled
        # The active inputs, summed into the log-odds as they are found: each feature's
        # standardised value (weight name, value), its bin and the crosses' cells (weight
        # names, each an input of 1).
        log_odds = self._intercept + offset
        standardised: list[tuple[str, float]] = []
        indicators: list[str] = []
        add, indicate = standardised.append, indicators.append
        values = dict(pairs)
        for name, value in values.items():
            count = counts.get(name, 0) + 1
            counts[name] = count
            scaled = _signed_log(value) if name in logged else value
            old_mean = means.get(name, 0.0)
            mean = means[name] = old_mean + (scaled - old_mean) / count
            variance = variances.get(name, 0.0)
            variance = variances[name] = (
                variance + ((scaled - old_mean) * (scaled - mean) - variance) / count
            )
            if variance > 0:
                scale = scales[name] = 1.0 / sqrt(variance)
                input_ = (scaled - mean) * scale
                add((name, input_))
                log_odds += weight(name, 0.0) * input_
            cuts = edges.get(name)
            if cuts is not None:
                cell = bins[name][bisect_right(cuts, value)]
                indicate(cell)
                log_odds += weight(cell, 0.0)
            elif warming is not None:
                warming.setdefault(name, []).append(value)
                warming_labels.setdefault(name, []).append(is_fraud)
        if self._cross_names:
            coarse, known = self._coarse, values.get
            for first, second, cells in self._cross_names:
                a, b = known(first), known(second)
                if a is not None and b is not None:
                    cell = cells[bisect_right(coarse[first], a)][bisect_right(coarse[second], b)]
                    indicate(cell)
                    log_odds += weight(cell, 0.0)
        # The log loss's gradient in the log-odds, a fraud weighted `positive_weight` times.
        gradient = _sigmoid(log_odds) - 1.0 if is_fraud else _sigmoid(log_odds)
        if is_fraud:
            gradient *= self.positive_weight
        if self.adaptive:
            self._step_adaptively(standardised, indicators, gradient)
        else:
            self._step(standardised, indicators, gradient)
        if warming is not None:
            self._seen += 1
            self._frauds_seen += is_fraud
            if self._warmed_up():
                self._freeze(warming)

    def _warmed_up(self) -> bool:
        if self._seen >= self.warm_up * WARM_UP_LIMIT:
            return True
        return self._seen >= self.warm_up and self._frauds_seen >= self.warm_up_frauds

    def _step(
        self, standardised: list[tuple[str, float]], indicators: list[str], gradient: float
    ) -> None:
        """One plain SGD step: every weight at the learning rate."""
        rate, l2, weights = self.learning_rate, self.l2, self._weights
        weight = weights.get
        self._intercept -= rate * gradient
        for name, input_ in standardised:
            old = weight(name, 0.0)
            weights[name] = old - rate * (gradient * input_ + l2 * old)
        for name in indicators:
            old = weight(name, 0.0)
            weights[name] = old - rate * (gradient + l2 * old)

    def _step_adaptively(
        self, standardised: list[tuple[str, float]], indicators: list[str], gradient: float
    ) -> None:
        """One AdaGrad step: each weight's step shrinks with the gradients it has had."""
        rate, l2, floor = self.learning_rate, self.l2, _ADAPTIVE_FLOOR
        weights, squares = self._weights, self._squares
        weight, square, sqrt = weights.get, squares.get, math.sqrt
        self._intercept_squares += gradient * gradient
        self._intercept -= rate * gradient / sqrt(floor + self._intercept_squares)
        if l2:
            inputs = [*standardised, *((name, 1.0) for name in indicators)]
            for name, input_ in inputs:
                old = weight(name, 0.0)
                step = gradient * input_ + l2 * old
                total = squares[name] = square(name, 0.0) + step * step
                weights[name] = old - rate * step / sqrt(floor + total)
            return
        # Without a penalty a step is the gradient times the input: the gradient itself for
        # every indicator.
        for name, input_ in standardised:
            step = gradient * input_
            total = squares[name] = square(name, 0.0) + step * step
            weights[name] = weight(name, 0.0) - rate * step / sqrt(floor + total)
        squared, rated = gradient * gradient, rate * gradient
        for name in indicators:
            total = squares[name] = square(name, 0.0) + squared
            weights[name] = weight(name, 0.0) - rated / sqrt(floor + total)

    def _freeze(self, warming: dict[str, list[float]]) -> None:
        """Set every warmed-up feature's edges; a feature first seen later gets none."""
        for name, values in warming.items():
            found = set(np.quantile(values, self.quantiles).tolist())
            labels = self._warming_labels.get(name, [])
            if self.label_cuts and len(labels) == len(values):
                found.update(cuts_from_labels(values, labels, self.label_cuts))
            cuts = sorted(found)
            self._edges[name] = cuts
            self._bin_names[name] = tuple(f"{name}#{index}" for index in range(len(cuts) + 1))
        crosses = [(a, b) for a, b in self.crosses if a in warming and b in warming]
        for name in {name for pair in crosses for name in pair}:
            self._coarse[name] = sorted(
                set(np.quantile(warming[name], self.cross_quantiles).tolist())
            )
        self._cross_names = tuple(
            (
                a,
                b,
                tuple(
                    tuple(f"{a}&{b}#{row},{column}" for column in range(len(self._coarse[b]) + 1))
                    for row in range(len(self._coarse[a]) + 1)
                ),
            )
            for a, b in crosses
        )
        self._warming = None
        self._warming_labels = {}
        self._average = self._positions = None


class _AveragePlace(NamedTuple):
    """The bin weight names and cross cells of each feature's mean, with the range each mean
    may move in before they change: reason codes subtract these terms for every score, and
    the means move by a label's share at a time."""

    bins: dict[str, str]
    cells: tuple[str, ...]
    ranges: tuple[tuple[str, bool, float, float], ...]
    """(feature, log-scaled, low, high): the place holds while ``low <= centre < high``."""

    def holds(self, means: dict[str, float]) -> bool:
        for name, logged, low, high in self.ranges:
            mean = means[name]
            centre = _signed_exp(mean) if logged else mean
            if not low <= centre < high:
                return False
        return True


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
