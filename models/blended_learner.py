"""The online learner and the latest batch model served as one model, blended as the most recent
labels say (`models.blend`).

`BlendedLearner` has the online learner's calls, so the detector, the lifecycle and the model
channel serve it as they serve any champion. Its online part learns every label; its batch part
is replaced by each retrain (`serve_blended`), never updated. Each label is first scored by both
parts as they stand (the online part before it learns the label), and the blend is re-chosen
on those scores (`models.blend.RecentBlend`) as the labels' event time moves on
(`labels_known`): the same choice `fraudstream evaluate --serve blend` replays.

The labels wait, with the online part's score and the time they arrived by, until the blend is
chosen (or `JUDGED_TOGETHER` are waiting): the batch part then scores them in one call, a tree
model costing far less a row in a batch than alone, and the window grows once, not per label.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.batch_model import BatchLearner
from models.blend import EITHER, Blend, RecentBlend, blend_name, blend_one
from models.detector import FraudDetector
from models.explain import FeatureVector, ReasonCode
from models.learners import OnlineLearner

BLEND_LEARNER = "blend"
"""The name a blended model is registered under."""

JUDGED_TOGETHER = 10_000
"""Labels waiting for the batch part's scores: more are judged before the hour is out."""


class BlendedLearner(OnlineLearner):
    """An online learner and a batch model, scored as their blend.

    Examples
    --------
    >>> from models.batch_model import BatchSpec, train_batch
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2_000, 1))
    >>> batch = train_batch(x, x[:, 0] > 2.0, ["amount"], BatchSpec("logistic", min_labels=10))
    >>> online = OnlineLearner("logistic")
    >>> model = BlendedLearner(online, batch, RecentBlend(chosen=1.0))
    >>> model.score({"amount": 3.0}) == batch.score({"amount": 3.0})
    True
    >>> model.learn({"amount": 3.0}, is_fraud=True)
    >>> online.labels_learned, model.version
    (1, 'blend+1')
    """

    # Not calling OnlineLearner.__init__: both parts are built already.
    def __init__(self, online: OnlineLearner, batch: BatchLearner, recent: RecentBlend) -> None:
        self.online = online
        self.batch = batch
        self.recent = recent
        self.name = BLEND_LEARNER
        self.seed = online.seed
        self.lineage = BLEND_LEARNER
        self.lineage_labels = online.labels_learned
        self._arrived: list[tuple[float, Sequence[float], bool]] = []
        """Labels not judged yet: the online part's score, the vector in the batch part's
        feature order, the verdict."""
        self._arrived_by: list[int] = []
        """The event second each of the first of them arrived by (the rest: not told yet)."""

    # --- what the lifecycle reads ----------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:  # type: ignore[override]
        """What the registry records: both parts and the blend chosen last."""
        return {
            "online": self.online.name,
            "online_params": dict(self.online.params),
            "batch": self.batch.lineage,
            "blend": blend_name(self.recent.chosen),
        }

    @property
    def labels_learned(self) -> int:  # type: ignore[override]
        return self.online.labels_learned

    @property
    def frauds_learned(self) -> int:  # type: ignore[override]
        return self.online.frauds_learned

    @property
    def chosen(self) -> Blend:
        """The blend served until the next choice."""
        return self.recent.chosen

    # --- scoring ---------------------------------------------------------------------------

    def score(self, features: FeatureVector) -> float:
        return blend_one(self.online.score(features), self.batch.score(features), self.chosen)

    def score_and_explain(
        self, features: FeatureVector, top: int = 3
    ) -> tuple[float, tuple[ReasonCode, ...]]:
        """The blend's score, and the reasons of the part that weighs more in it (under
        `EITHER`, of the part that suspects more; the online part on a tie)."""
        chosen = self.chosen
        if top <= 0:
            return self.score(features), ()
        if chosen == EITHER:
            online, online_reasons = self.online.score_and_explain(features, top)
            batch, batch_reasons = self.batch.score_and_explain(features, top)
            reasons = online_reasons if online >= batch else batch_reasons
            return blend_one(online, batch, chosen), reasons
        assert not isinstance(chosen, str)
        if chosen > 0.5:
            batch, reasons = self.batch.score_and_explain(features, top)
            return blend_one(self.online.score(features), batch, chosen), reasons
        online, reasons = self.online.score_and_explain(features, top)
        return blend_one(online, self.batch.score(features), chosen), reasons

    # --- learning --------------------------------------------------------------------------

    def learn(self, features: FeatureVector, is_fraud: bool) -> None:
        """The online part learns, once its score of the vector is kept for the window."""
        row = [features.get(name, np.nan) for name in self.batch.feature_names]
        self._arrived.append((self.online.score(features), row, is_fraud))
        self.online.learn(features, is_fraud)

    def learn_kept(self, names: Sequence[str], values: Sequence[float], is_fraud: bool) -> None:
        if len(values) != len(names):
            raise ValueError(f"a kept vector of {len(values)} values for {len(names)} features")
        vector = dict(zip(names, values))  # noqa: B905 (lengths checked above)
        row = values if tuple(names) == self.batch.feature_names else None
        if row is None:
            row = array("d", [vector.get(name, np.nan) for name in self.batch.feature_names])
        self._arrived.append((self.online.score(vector), row, is_fraud))
        self.online.learn_kept(names, values, is_fraud)

    def labels_known(self, second: int) -> None:
        """The labels learned so far arrived by event second ``second``; the blend is chosen
        again when an hour has passed since the last choice."""
        self._stamp(second)
        recent = self.recent
        due = recent.due(second)
        if due or len(self._arrived) >= JUDGED_TOGETHER:
            self._judge()
        if due:
            recent.choose(second)

    def with_batch(self, batch: BatchLearner, holdout_choice: Blend, second: int) -> None:
        """Serve ``batch`` as the batch part from now on.

        The labels learned so far are judged by the batch part that served while they arrived;
        the blend is then chosen at once: on the recent labels when they hold enough frauds,
        else as the retrain's hold-out chose it.
        """
        self._stamp(second)
        self._judge()
        self.batch = batch
        self.recent.chosen = holdout_choice
        self.recent.choose(second)

    def _stamp(self, second: int) -> None:
        self._arrived_by.extend([second] * (len(self._arrived) - len(self._arrived_by)))

    def _judge(self) -> None:
        """Give the waiting labels to the window, with the batch part's scores."""
        arrived, seconds = self._arrived, self._arrived_by
        if not arrived:
            return
        self._arrived, self._arrived_by = [], []
        online, rows, verdicts = zip(*arrived, strict=True)
        matrix = np.array(rows, dtype=np.float64)
        # A feature the vector lacked is read at the batch model's training mean, as it
        # scores such a vector.
        missing = np.isnan(matrix)
        if missing.any():
            matrix[missing] = np.broadcast_to(self.batch.means, matrix.shape)[missing]
        self.recent.add(seconds, online, self.batch.predict_many(matrix), verdicts)


def serve_blended(
    detector: FraudDetector,
    batch: BatchLearner,
    holdout_choice: Blend,
    second: int,
    recent: RecentBlend | None = None,
) -> BlendedLearner:
    """``detector``'s champion served blended with a retrain's ``batch`` model from event second
    ``second``; the blend it serves is returned.

    A blend takes ``batch`` as its new batch part and keeps its online part and its window; any
    other champion becomes the online part of a new blend (choosing on ``recent``, default
    `RecentBlend`'s settings), which serves as a new lineage. ``holdout_choice`` serves until
    the recent labels choose.
    """
    champion = detector.learner
    if isinstance(champion, BlendedLearner):
        champion.with_batch(batch, holdout_choice, second)
        return champion
    blended = BlendedLearner(champion, batch, recent or RecentBlend())
    blended.with_batch(batch, holdout_choice, second)
    detector.replace_learner(blended, new_lineage=True)
    return blended
