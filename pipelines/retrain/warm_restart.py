"""Warm restart: a fresh online learner replayed over the batch job's training window.

An online learner that has run for months carries its whole past; one started afresh forgets
everything. A warm restart sits between: a new learner of the serving kind (the configured
recipe, parameters and seed) learns the training window's labelled examples in event-time
order, from the vectors stored at scoring time (never recomputed, so what it learns is exactly
what the champion learned from those transactions), and then shadows the champion as a
challenger. Whether it serves is for the challenger policy to judge on the labels that follow.

Deterministic: the store returns the rows in a fixed order (event time, then transaction id)
and the learner is seeded, so the same rows and seed give the same learner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.learners import OnlineLearner
from pipelines.retrain.offline_store import feature_columns


def replay_online(
    rows: pd.DataFrame,
    names: Sequence[str],
    learner: str,
    params: Mapping[str, Any],
    seed: int,
) -> OnlineLearner:
    """A fresh ``learner`` that has learned ``rows`` (the offline store's shape) in order.

    Examples
    --------
    >>> rows = pd.DataFrame({"f_amount": [10.0, 900.0], "is_fraud": [False, True]})
    >>> replay_online(rows, ["amount"], "logistic", {}, seed=0).labels_learned
    2
    """
    online = OnlineLearner(learner, params, seed=seed)
    matrix = rows[feature_columns(names)].to_numpy(dtype=np.float64)
    frauds = rows["is_fraud"].to_numpy(dtype=bool)
    names = tuple(names)
    # The call the detector learns a kept vector with: the same update, value for value.
    for values, is_fraud in zip(matrix.tolist(), frauds.tolist(), strict=True):
        online.learn_kept(names, values, is_fraud)
    return online
