"""An online binned logistic regression on top of a few shallow trees it refits itself.

The binned learner (`models.binned`) is nonlinear per feature but additive: it cannot express a
sharp joint threshold such as "large amount, and unusual for this card", which trees find at
once. Here the learner keeps a buffer of its recent labelled vectors (every fraud, a sample of
the legitimate ones) and, every ``refit_every`` labels, fits a small scikit-learn
gradient-boosted ensemble on it in a background thread. The score is a logistic stack of the
two log-odds, the binned layer's and the trees', whose three weights are learned online too:
the binned layer learns every label as it arrives (a new pattern's first labels count at once),
the trees bring the interactions, and the stack moves weight to whichever ranks better now.

Determinism: a refit starts at a label count and its trees are installed exactly
``install_after`` labels later (waiting for the fit if it is not done), so a replay gives the
same scores however fast the machine is, and the service never waits on a fit that finished in
time. The trees are kept as plain arrays (`models.tree_basis`), walked in Python per row.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from river import base
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from models.binned import (
    DEFAULT_CROSS_QUANTILES,
    DEFAULT_QUANTILES,
    BinnedLogisticRegression,
    _sigmoid,
)
from models.explain import FeatureVector, ReasonCode, strongest
from models.tree_basis import TreeBasis


class _Fit:
    """One refit in flight: the buffer's copy it learns from, and the thread doing it.

    Pickled, it waits for the thread and keeps only the trees it produced.
    """

    def __init__(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
        features: tuple[str, ...],
        params: dict[str, Any],
    ) -> None:
        self.result: TreeBasis | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run,
            args=(rows, labels, weights, features, params),
            name="fraudstream-tree-refit",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
        features: tuple[str, ...],
        params: dict[str, Any],
    ) -> None:
        # One thread: the fit must not take the cores the scoring path runs on.
        with threadpool_limits(limits=1, user_api="openmp"):
            model = HistGradientBoostingClassifier(**params)
            model.fit(rows, labels, sample_weight=weights)
        self.result = TreeBasis.from_sklearn(model, features)

    def wait(self) -> TreeBasis | None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.result

    def __getstate__(self) -> dict[str, Any]:
        return {"result": self.wait(), "_thread": None}


class BoostedBinnedLogisticRegression(base.Classifier):
    """`BinnedLogisticRegression` learning on top of shallow trees refitted on recent labels.

    Parameters
    ----------
    learning_rate, l2, positive_weight, quantiles, warm_up, crosses, cross_quantiles, adaptive,
    label_cuts, warm_up_frauds, log_scaled
        The binned layer's (see `BinnedLogisticRegression`).
    window
        Labels the buffer spans: a kept vector older than this many labels is dropped.
    legit_share
        Share of legitimate vectors kept in the buffer (every fraud is kept); the kept ones
        are weighted back up in the fit, and the frauds weighted to balance them.
    refit_every
        Labels between two refits; the first refit waits for this many too.
    install_after
        Labels between the start of a refit and the moment its trees are used.
    trees, max_depth, tree_learning_rate, min_samples_leaf
        The ensemble's size and shape (scikit-learn's ``max_iter``, ``max_depth``,
        ``learning_rate``, ``min_samples_leaf``).
    stack_rate
        Learning rate of the stack's bias and two weights.
    seed
        Seeds the sampling of legitimate vectors and the fit.

    Examples
    --------
    Fraud is a large amount at night only, a joint threshold:

    >>> rng = random.Random(1)
    >>> model = BoostedBinnedLogisticRegression(
    ...     warm_up=500, refit_every=2_000, install_after=0, legit_share=1.0
    ... )
    >>> for _ in range(4_000):
    ...     x = {"amount": rng.uniform(0, 400), "night": float(rng.random() < 0.3)}
    ...     model.learn_one(x, x["amount"] > 300 and x["night"] == 1.0)
    >>> model.trees_installed
    2
    >>> score = lambda amount, night: model.predict_proba_one({"amount": amount, "night": night})
    >>> score(350, 1.0)[True] > 0.5 > score(350, 0.0)[True]
    True
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
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
        window: int = 280_000,
        legit_share: float = 0.1,
        refit_every: int = 10_000,
        install_after: int = 1_000,
        trees: int = 30,
        max_depth: int = 3,
        tree_learning_rate: float = 0.1,
        min_samples_leaf: int = 20,
        stack_rate: float = 0.001,
        seed: int = 0,
    ) -> None:
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
        self.window = window
        self.legit_share = legit_share
        self.refit_every = refit_every
        self.install_after = install_after
        self.trees = trees
        self.max_depth = max_depth
        self.tree_learning_rate = tree_learning_rate
        self.min_samples_leaf = min_samples_leaf
        self.stack_rate = stack_rate
        self.seed = seed
        self.binned = BinnedLogisticRegression(
            learning_rate,
            l2,
            positive_weight,
            quantiles,
            warm_up,
            crosses,
            cross_quantiles,
            adaptive,
            label_cuts,
            warm_up_frauds,
            self.log_scaled,
        )
        self._features: tuple[str, ...] | None = None
        self._kept: deque[tuple[int, tuple[float, ...], bool]] = deque()
        """(label number, values in `_features` order, is fraud) of the buffered vectors."""
        self._labels = 0
        self._random = random.Random(seed)
        self._basis: TreeBasis | None = None
        self._basis_at_mean: list[float] = []
        """The installed trees' feature shares at the means of their install."""
        self._basis_average = 0.0
        """The installed trees' log-odds at those means."""
        self._fit: _Fit | None = None
        self._fit_installs_at = 0
        self.trees_installed = 0
        self._stack = [0.0, 1.0, 1.0]
        """Bias and weights of the binned layer's and the trees' log-odds in the score."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model saved before adaptive steps, label cuts, the warm-up's fraud count or log
        # scales existed goes on learning as it did.
        state.setdefault("adaptive", False)
        state.setdefault("label_cuts", 0)
        state.setdefault("warm_up_frauds", 0)
        state.setdefault("log_scaled", ())
        self.__dict__.update(state)

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def basis(self) -> TreeBasis | None:
        """The trees in use, if any have been fitted."""
        return self._basis

    # --- scoring ---------------------------------------------------------------------------

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        probability = self.score_and_explain(x, top=0)[0]
        return {False: 1.0 - probability, True: probability}

    def _margin(self, x: FeatureVector) -> float:
        basis = self._basis
        if basis is None:
            return 0.0
        get = x.get
        return basis.margin([get(name, 0.0) for name in basis.features])

    def score_and_explain(self, x: FeatureVector, top: int) -> tuple[float, tuple[ReasonCode, ...]]:
        """The fraud probability and the ``top`` features that pushed it up most.

        Pushes are exact: the binned layer's weight times the feature's push there (see
        `BinnedLogisticRegression.score_and_explain`), plus the trees' weight times its share
        of their log-odds (each step down a tree belongs to the feature it splits on) less
        its share at the means the trees were installed with. The log-odds is the score of
        an all-average transaction plus the sum of the pushes.
        """
        binned, basis = self.binned, self._basis
        bias, binned_weight, trees_weight = self._stack
        if top <= 0:
            return _sigmoid(
                bias + binned_weight * binned.log_odds(x) + trees_weight * self._margin(x)
            ), ()
        log_odds, pushes = binned.explain_log_odds(x)
        log_odds = bias + binned_weight * log_odds
        pushes = [binned_weight * push for push in pushes]
        names = list(x)
        if basis is not None:
            get = x.get
            shares = basis.contributions([get(name, 0.0) for name in basis.features])
            margin = self._basis_average + sum(shares) - sum(self._basis_at_mean)
            log_odds += trees_weight * margin
            position = {name: index for index, name in enumerate(names)}
            for feature, share, average in zip(
                basis.features, shares, self._basis_at_mean, strict=True
            ):
                index = position.get(feature)
                if index is not None:
                    pushes[index] += trees_weight * (share - average)
        return _sigmoid(log_odds), strongest(names, pushes, x, top)

    # --- learning --------------------------------------------------------------------------

    def learn_one(self, x: dict[Any, Any], y: base.typing.ClfTarget, **kwargs: Any) -> None:
        self.learn_pairs(x.items(), bool(y))

    def learn_pairs(self, pairs: Iterable[tuple[str, float]], is_fraud: bool) -> None:
        """Learn one labelled vector given as (name, value) pairs."""
        vector = dict(pairs)
        if self._features is None:
            self._features = tuple(vector)
        self._labels += 1
        binned = self.binned
        self._learn_stack(binned.log_odds(vector), self._margin(vector), is_fraud)
        binned.learn_pairs(vector.items(), is_fraud)
        if is_fraud or self._random.random() < self.legit_share:
            get = vector.get
            self._kept.append(
                (self._labels, tuple(get(name, 0.0) for name in self._features), is_fraud)
            )
        kept, oldest = self._kept, self._labels - self.window
        while kept and kept[0][0] <= oldest:
            kept.popleft()
        if self._fit is not None and self._labels >= self._fit_installs_at:
            self._install(self._fit.wait())
        if self._fit is None and self._labels % self.refit_every == 0:
            self._start_fit()

    def _learn_stack(self, binned_log_odds: float, margin: float, is_fraud: bool) -> None:
        """One SGD step of the log loss on the weights of the two log-odds."""
        stack = self._stack
        bias, binned_weight, trees_weight = stack
        log_odds = bias + binned_weight * binned_log_odds + trees_weight * margin
        gradient = _sigmoid(log_odds) - 1.0 if is_fraud else _sigmoid(log_odds)
        step = self.stack_rate * gradient
        stack[0] = bias - step
        stack[1] = binned_weight - step * binned_log_odds
        stack[2] = trees_weight - step * margin

    def _start_fit(self) -> None:
        kept, features = self._kept, self._features
        if features is None:
            return
        labels = np.fromiter((fraud for _, _, fraud in kept), dtype=bool, count=len(kept))
        frauds = int(labels.sum())
        if frauds < 2 or frauds == len(labels):
            return
        rows = np.array([values for _, values, _ in kept], dtype=np.float64)
        # Frauds weighted to balance the (sampled, weighted back up) legitimate ones: the fit
        # is stable and ranks well; the stack's bias takes the shift of the log-odds out.
        legit = (len(labels) - frauds) / self.legit_share
        weights = np.where(labels, legit / frauds, 1.0 / self.legit_share)
        params = {
            "max_iter": self.trees,
            "max_depth": self.max_depth,
            "learning_rate": self.tree_learning_rate,
            "min_samples_leaf": self.min_samples_leaf,
            "early_stopping": False,
            "random_state": self.seed + self.trees_installed,
        }
        self._fit = _Fit(rows, labels, weights, features, params)
        self._fit_installs_at = self._labels + self.install_after
        if self.install_after <= 0:
            self._install(self._fit.wait())

    def _install(self, basis: TreeBasis | None) -> None:
        self._fit = None
        if basis is None:
            return
        centres = self.binned.centres()
        at_mean = [centres.get(name, 0.0) for name in basis.features]
        self._basis_at_mean = basis.contributions(at_mean)
        self._basis_average = basis.margin(at_mean)
        self._basis = basis
        self.trees_installed += 1
